// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

import {CloneArgs} from "./libraries/CloneArgs.sol";
import {IDatatoken} from "./interfaces/IDatatoken.sol";

/// @title Data NFT: one per dataset, an EIP-1167 clone made by the DataFactory.
/// @notice A single token (id 1) minted to the provider at publish; its holder is the owner.
/// Stores the dataset's metadata URI and hash and its state, and gives out two roles:
/// managers (set by the owner) and metadata updaters (set by the owner or a manager).
/// @dev Clone immutable argument: the factory address (20 bytes). When the NFT changes hands every
/// role is reset (roles are kept per generation, and a transfer starts a new one, so no loop) and the
/// datatoken's payment collector becomes the new owner.
contract DataNFT is ERC721 {
    uint8 public constant STATE_ACTIVE = 0;
    uint8 public constant STATE_DEPRECATED = 1;
    uint8 public constant STATE_ORDERING_DISABLED = 2;
    uint8 public constant STATE_UNLISTED = 3;

    uint8 public constant ROLE_MANAGER = 1;
    uint8 public constant ROLE_METADATA_UPDATER = 2;

    uint256 private constant TOKEN_ID = 1;

    address private _datatoken;
    uint8 private _state;
    bool private _initialized;
    uint64 private _generation;
    bytes32 private _metadataHash;
    string private _metadataURI;
    string private _name;
    string private _symbol;
    /// @dev Role bits (ROLE_MANAGER, ROLE_METADATA_UPDATER) per owner generation.
    mapping(uint64 generation => mapping(address account => uint8 roles)) private _roles;

    event RoleChanged(uint8 indexed role, address indexed account, bool granted);
    event MetadataUpdated(string uri, bytes32 hash, address indexed updater);
    event StateChanged(uint8 oldState, uint8 newState, address indexed by);
    event RolesReset(address indexed newOwner);

    error NotAuthorized(address caller);
    error InvalidState(uint8 state);
    error AlreadyInitialized();

    modifier onlyOwner() {
        if (msg.sender != _ownerOf(TOKEN_ID)) revert NotAuthorized(msg.sender);
        _;
    }

    modifier onlyOwnerOrManager() {
        if (msg.sender != _ownerOf(TOKEN_ID) && !_hasRole(msg.sender, ROLE_MANAGER)) revert NotAuthorized(msg.sender);
        _;
    }

    /// @dev The implementation itself can never be initialised.
    constructor() ERC721("DataNFT implementation", "DATANFT") {
        _initialized = true;
    }

    /// @notice Called once by the factory in the publish transaction: mints token 1 to `owner_`.
    function initialize(
        address owner_,
        address datatoken_,
        string calldata name_,
        string calldata symbol_,
        string calldata metadataURI_,
        bytes32 metadataHash_
    ) external {
        if (msg.sender != factory()) revert NotAuthorized(msg.sender);
        if (_initialized) revert AlreadyInitialized();
        _initialized = true;
        _datatoken = datatoken_;
        _name = name_;
        _symbol = symbol_;
        _metadataURI = metadataURI_;
        _metadataHash = metadataHash_;
        _mint(owner_, TOKEN_ID);
        emit MetadataUpdated(metadataURI_, metadataHash_, owner_);
    }

    // ----- roles -----

    function addManager(address account) external onlyOwner {
        _setRole(ROLE_MANAGER, account, true);
    }

    function removeManager(address account) external onlyOwner {
        _setRole(ROLE_MANAGER, account, false);
    }

    function addMetadataUpdater(address account) external onlyOwnerOrManager {
        _setRole(ROLE_METADATA_UPDATER, account, true);
    }

    function removeMetadataUpdater(address account) external onlyOwnerOrManager {
        _setRole(ROLE_METADATA_UPDATER, account, false);
    }

    function _setRole(uint8 role, address account, bool granted) private {
        mapping(address => uint8) storage roles = _roles[_generation];
        roles[account] = granted ? roles[account] | role : roles[account] & ~role;
        emit RoleChanged(role, account, granted);
    }

    function _hasRole(address account, uint8 role) private view returns (bool) {
        return _roles[_generation][account] & role != 0;
    }

    /// @dev A transfer (not the mint at publish) starts a new generation of roles and makes the new
    /// owner the datatoken's payment collector.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        if (from != address(0)) {
            unchecked {
                _generation += 1; // 2**64 transfers are out of reach
            }
            emit RolesReset(to);
            IDatatoken(_datatoken).resetPaymentCollector(to);
        }
    }

    // ----- metadata and state -----

    /// @notice Owner or metadata updater.
    function setMetadata(string calldata uri, bytes32 hash) external {
        if (msg.sender != _ownerOf(TOKEN_ID) && !_hasRole(msg.sender, ROLE_METADATA_UPDATER)) {
            revert NotAuthorized(msg.sender);
        }
        _metadataURI = uri;
        _metadataHash = hash;
        emit MetadataUpdated(uri, hash, msg.sender);
    }

    /// @notice Owner or manager. Deprecated (1) and OrderingDisabled (2) refuse orders; Unlisted (3)
    /// only hides the listing. The datatoken is told in the same call, so an order reads no NFT state.
    function setState(uint8 newState) external onlyOwnerOrManager {
        if (newState > STATE_UNLISTED) revert InvalidState(newState);
        uint8 oldState = _state;
        _state = newState;
        emit StateChanged(oldState, newState, msg.sender);
        IDatatoken(_datatoken).syncNftState(newState);
    }

    // ----- views -----

    function factory() public view returns (address) {
        return CloneArgs.addressAt(0);
    }

    function datatoken() external view returns (address) {
        return _datatoken;
    }

    function state() external view returns (uint8) {
        return _state;
    }

    function metadataURI() external view returns (string memory) {
        return _metadataURI;
    }

    function metadataHash() external view returns (bytes32) {
        return _metadataHash;
    }

    function isManager(address account) external view returns (bool) {
        return _hasRole(account, ROLE_MANAGER);
    }

    function isMetadataUpdater(address account) external view returns (bool) {
        return _hasRole(account, ROLE_METADATA_UPDATER);
    }

    function name() public view override returns (string memory) {
        return _name;
    }

    function symbol() public view override returns (string memory) {
        return _symbol;
    }

    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        _requireOwned(tokenId);
        return _metadataURI;
    }
}
