// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice What data NFTs and datatokens read from their factory.
interface IDataFactory {
    function operator() external view returns (address);
}
