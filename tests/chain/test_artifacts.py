"""The committed artifacts: complete, and built from the sources as they are now."""

from __future__ import annotations

import pytest

from chain.artifacts import ARTIFACT_NAMES, artifact_source_hash, load_artifact, source_hash


@pytest.mark.parametrize("name", ARTIFACT_NAMES)
def test_artifact_has_abi_and_bytecode(name):
    artifact = load_artifact(name)
    assert artifact["contractName"] == name
    assert isinstance(artifact["abi"], list) and artifact["abi"]
    for key in ("bytecode", "deployedBytecode"):
        assert artifact[key].startswith("0x") and len(artifact[key]) > 2
        bytes.fromhex(artifact[key][2:])
    assert artifact["compiler"]["settings"]["evmVersion"] == "cancun"


@pytest.mark.parametrize("name", ARTIFACT_NAMES)
def test_artifact_is_not_stale(name):
    assert artifact_source_hash(name) == source_hash(), (
        f"chain/artifacts/{name}.json is stale against chain/contracts, chain/build.mjs or package.json: "
        "run `npm ci && node chain/build.mjs` and commit chain/artifacts/"
    )


def test_source_hash_notices_a_changed_contract(tmp_path, monkeypatch):
    import chain.artifacts as artifacts

    before = source_hash()
    contracts = tmp_path / "chain" / "contracts"
    contracts.mkdir(parents=True)
    for path in artifacts.CONTRACTS_DIR.rglob("*.sol"):
        target = contracts / path.relative_to(artifacts.CONTRACTS_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (tmp_path / "chain" / "build.mjs").write_bytes(artifacts.BUILD_SCRIPT.read_bytes())
    (tmp_path / "package.json").write_bytes(artifacts.PACKAGE_JSON.read_bytes())
    monkeypatch.setattr(artifacts, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(artifacts, "CONTRACTS_DIR", contracts)
    monkeypatch.setattr(artifacts, "BUILD_SCRIPT", tmp_path / "chain" / "build.mjs")
    monkeypatch.setattr(artifacts, "PACKAGE_JSON", tmp_path / "package.json")
    assert source_hash() == before
    datatoken = contracts / "Datatoken.sol"
    datatoken.write_text(datatoken.read_text() + "\n// changed\n")
    assert source_hash() != before
