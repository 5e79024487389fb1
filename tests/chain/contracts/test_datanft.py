"""DataNFT: owner, managers and metadata updaters; metadata and state, with their events."""

from __future__ import annotations

import pytest
from eth_utils import keccak

pytestmark = pytest.mark.chain

ROLE_MANAGER = 1
ROLE_METADATA_UPDATER = 2


def not_authorized(account):
    return ("NotAuthorized", {"caller": account.address})


def test_owner_adds_and_removes_managers(chain, dataset, accounts):
    nft = dataset.nft
    receipt = chain.tx(accounts.provider, nft.functions.addManager(accounts.manager.address))
    assert nft.functions.isManager(accounts.manager.address).call() is True
    changed = chain.event(nft, "RoleChanged", receipt)
    assert (changed.role, changed.account, changed.granted) == (ROLE_MANAGER, accounts.manager.address, True)

    receipt = chain.tx(accounts.provider, nft.functions.removeManager(accounts.manager.address))
    assert nft.functions.isManager(accounts.manager.address).call() is False
    changed = chain.event(nft, "RoleChanged", receipt)
    assert (changed.role, changed.account, changed.granted) == (ROLE_MANAGER, accounts.manager.address, False)


def test_only_the_owner_manages_managers(chain, dataset, accounts):
    nft = dataset.nft
    chain.tx(accounts.provider, nft.functions.addManager(accounts.manager.address))
    for caller in (accounts.manager, accounts.stranger, accounts.operator):
        assert chain.revert(caller, nft.functions.addManager(caller.address)) == not_authorized(caller)
        assert chain.revert(caller, nft.functions.removeManager(accounts.manager.address)) == not_authorized(caller)


def test_owner_or_manager_sets_metadata_updaters(chain, dataset, accounts):
    nft = dataset.nft
    chain.tx(accounts.provider, nft.functions.addManager(accounts.manager.address))
    receipt = chain.tx(accounts.manager, nft.functions.addMetadataUpdater(accounts.updater.address))
    assert nft.functions.isMetadataUpdater(accounts.updater.address).call() is True
    changed = chain.event(nft, "RoleChanged", receipt)
    assert (changed.role, changed.account, changed.granted) == (
        ROLE_METADATA_UPDATER,
        accounts.updater.address,
        True,
    )
    chain.tx(accounts.provider, nft.functions.removeMetadataUpdater(accounts.updater.address))
    assert nft.functions.isMetadataUpdater(accounts.updater.address).call() is False
    chain.tx(accounts.provider, nft.functions.addMetadataUpdater(accounts.updater.address))
    chain.tx(accounts.manager, nft.functions.removeMetadataUpdater(accounts.updater.address))
    assert nft.functions.isMetadataUpdater(accounts.updater.address).call() is False


def test_strangers_and_updaters_cannot_set_metadata_updaters(chain, dataset, accounts):
    nft = dataset.nft
    chain.tx(accounts.provider, nft.functions.addMetadataUpdater(accounts.updater.address))
    for caller in (accounts.stranger, accounts.updater):
        fn = nft.functions.addMetadataUpdater(accounts.stranger.address)
        assert chain.revert(caller, fn) == not_authorized(caller)
        fn = nft.functions.removeMetadataUpdater(accounts.updater.address)
        assert chain.revert(caller, fn) == not_authorized(caller)


def test_owner_and_metadata_updater_set_metadata(chain, dataset, accounts):
    nft = dataset.nft
    new_hash = keccak(text="metadata v2")
    receipt = chain.tx(accounts.provider, nft.functions.setMetadata("ipfs://v2", new_hash))
    assert nft.functions.metadataURI().call() == "ipfs://v2"
    assert nft.functions.metadataHash().call() == new_hash
    updated = chain.event(nft, "MetadataUpdated", receipt)
    assert (updated.uri, updated.hash, updated.updater) == ("ipfs://v2", new_hash, accounts.provider.address)

    chain.tx(accounts.provider, nft.functions.addMetadataUpdater(accounts.updater.address))
    receipt = chain.tx(accounts.updater, nft.functions.setMetadata("ipfs://v3", keccak(text="v3")))
    assert nft.functions.metadataURI().call() == "ipfs://v3"
    assert chain.event(nft, "MetadataUpdated", receipt).updater == accounts.updater.address


def test_managers_and_strangers_cannot_set_metadata(chain, dataset, accounts):
    nft = dataset.nft
    chain.tx(accounts.provider, nft.functions.addManager(accounts.manager.address))
    for caller in (accounts.manager, accounts.stranger):
        fn = nft.functions.setMetadata("ipfs://evil", keccak(text="evil"))
        assert chain.revert(caller, fn) == not_authorized(caller)


def test_set_state_by_owner_or_manager(chain, dataset, accounts):
    nft = dataset.nft
    receipt = chain.tx(accounts.provider, nft.functions.setState(3))
    changed = chain.event(nft, "StateChanged", receipt)
    assert (changed.oldState, changed.newState, changed.by) == (0, 3, accounts.provider.address)
    assert nft.functions.state().call() == 3

    chain.tx(accounts.provider, nft.functions.addManager(accounts.manager.address))
    receipt = chain.tx(accounts.manager, nft.functions.setState(1))
    changed = chain.event(nft, "StateChanged", receipt)
    assert (changed.oldState, changed.newState, changed.by) == (3, 1, accounts.manager.address)
    synced = chain.event(dataset.datatoken, "NftStateSynced", receipt)
    assert (synced.nftState, synced.orderingOpen) == (1, False)


def test_set_state_refusals(chain, dataset, accounts):
    nft = dataset.nft
    chain.tx(accounts.provider, nft.functions.addMetadataUpdater(accounts.updater.address))
    for caller in (accounts.stranger, accounts.updater, accounts.operator):
        assert chain.revert(caller, nft.functions.setState(1)) == not_authorized(caller)
    assert chain.revert(accounts.provider, nft.functions.setState(4)) == ("InvalidState", {"state": 4})


def test_roles_follow_the_nft_owner(chain, dataset, accounts):
    nft = dataset.nft
    chain.tx(
        accounts.provider,
        nft.functions.transferFrom(accounts.provider.address, accounts.stranger.address, 1),
    )
    assert nft.functions.ownerOf(1).call() == accounts.stranger.address
    assert chain.revert(accounts.provider, nft.functions.setState(1)) == not_authorized(accounts.provider)
    chain.tx(accounts.stranger, nft.functions.addManager(accounts.manager.address))
    assert nft.functions.isManager(accounts.manager.address).call() is True


def test_initialize_only_by_the_factory(chain, dataset, accounts):
    fn = dataset.nft.functions.initialize(
        accounts.stranger.address, dataset.datatoken.address, "x", "X", "ipfs://x", b"\0" * 32
    )
    assert chain.revert(accounts.stranger, fn) == not_authorized(accounts.stranger)
    # The implementation itself cannot be initialised by anyone either.
    impl = chain.contract("DataNFT", chain.deployment["contracts"]["DataNFT"])
    fn = impl.functions.initialize(accounts.stranger.address, dataset.datatoken.address, "x", "X", "u", b"\0" * 32)
    assert chain.revert(accounts.stranger, fn) == not_authorized(accounts.stranger)


def test_initialize_twice_is_refused(chain, accounts, clone_with_factory):
    """A clone whose factory argument is an EOA, so the second initialize reaches the guard."""
    nft = clone_with_factory("DataNFT", accounts.stranger)
    fn = nft.functions.initialize(accounts.provider.address, accounts.provider.address, "a", "A", "u", b"\0" * 32)
    chain.tx(accounts.stranger, fn)
    assert nft.functions.ownerOf(1).call() == accounts.provider.address
    assert chain.revert(accounts.stranger, fn) == ("AlreadyInitialized", {})
