// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice What a datatoken reads from its data NFT.
interface IDataNFT {
    function ownerOf(uint256 tokenId) external view returns (address);
    function isManager(address account) external view returns (bool);
    function name() external view returns (string memory);
    function symbol() external view returns (string memory);
}
