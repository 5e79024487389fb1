// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {DataNFT} from "../contracts/DataNFT.sol";
import {Fixture} from "./Fixture.sol";

/// @notice Unit tests of the data NFT: roles (reset on transfer), metadata, state.
contract DataNFTTest is Fixture {
    address internal manager = makeAddr("manager");
    address internal updater = makeAddr("updater");

    function test_roles() public {
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(DataNFT.NotAuthorized.selector, buyer));
        nft.addManager(manager);
        vm.expectEmit(address(nft));
        emit DataNFT.RoleChanged(1, manager, true);
        vm.prank(provider);
        nft.addManager(manager);
        vm.prank(manager);
        nft.addMetadataUpdater(updater);
        assertTrue(nft.isManager(manager));
        assertTrue(nft.isMetadataUpdater(updater));
        vm.prank(manager);
        vm.expectRevert(abi.encodeWithSelector(DataNFT.NotAuthorized.selector, manager));
        nft.removeManager(manager);
        vm.prank(manager);
        nft.removeMetadataUpdater(updater);
        assertFalse(nft.isMetadataUpdater(updater));
        vm.prank(provider);
        nft.removeManager(manager);
        assertFalse(nft.isManager(manager));
    }

    function test_bothRolesOnOneAccount() public {
        vm.startPrank(provider);
        nft.addManager(manager);
        nft.addMetadataUpdater(manager);
        nft.removeManager(manager);
        vm.stopPrank();
        assertFalse(nft.isManager(manager));
        assertTrue(nft.isMetadataUpdater(manager));
    }

    function test_transfer_resetsRolesAndCollector() public {
        address next = makeAddr("next");
        vm.startPrank(provider);
        nft.addManager(manager);
        nft.addMetadataUpdater(updater);
        vm.expectEmit(address(nft));
        emit DataNFT.RolesReset(next);
        nft.safeTransferFrom(provider, next, 1);
        vm.stopPrank();
        assertFalse(nft.isManager(manager));
        assertFalse(nft.isMetadataUpdater(updater));
        assertEq(dt.paymentCollector(), next);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DataNFT.NotAuthorized.selector, provider));
        nft.setState(1);
        vm.prank(next);
        nft.addManager(manager);
        assertTrue(nft.isManager(manager));
    }

    function test_setMetadata() public {
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(DataNFT.NotAuthorized.selector, buyer));
        nft.setMetadata("x", bytes32(0));
        vm.prank(provider);
        nft.addMetadataUpdater(updater);
        vm.expectEmit(address(nft));
        emit DataNFT.MetadataUpdated("ipfs://new", keccak256("new"), updater);
        vm.prank(updater);
        nft.setMetadata("ipfs://new", keccak256("new"));
        assertEq(nft.metadataURI(), "ipfs://new");
        assertEq(nft.tokenURI(1), "ipfs://new");
        assertEq(nft.metadataHash(), keccak256("new"));
    }

    function test_setState() public {
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DataNFT.InvalidState.selector, uint8(4)));
        nft.setState(4);
        vm.expectEmit(address(nft));
        emit DataNFT.StateChanged(0, 1, provider);
        vm.prank(provider);
        nft.setState(1);
        assertEq(nft.state(), 1);
        assertFalse(dt.orderingOpen());
    }

    function test_initialize_onlyFactoryOnce() public {
        vm.expectRevert(abi.encodeWithSelector(DataNFT.NotAuthorized.selector, address(this)));
        nft.initialize(address(this), address(dt), "", "", "", 0);
        vm.prank(address(factory));
        vm.expectRevert(DataNFT.AlreadyInitialized.selector);
        nft.initialize(address(this), address(dt), "", "", "", 0);
    }

    function test_views() public view {
        assertEq(nft.factory(), address(factory));
        assertEq(nft.datatoken(), address(dt));
        assertEq(nft.name(), "Hospital readmissions 2019-2023");
        assertEq(nft.symbol(), "PPDX-42");
    }
}
