// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice What the factory and the data NFT call on a datatoken.
interface IDatatoken {
    function initialize(uint256 price, address paymentCollector) external;
    function syncNftState(uint8 state) external;
    function resetPaymentCollector(address newOwner) external;
}
