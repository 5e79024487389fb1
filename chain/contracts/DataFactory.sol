// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";

import {DataNFT} from "./DataNFT.sol";
import {Datatoken} from "./Datatoken.sol";

/// @title DataFactory: publishes a dataset (data NFT + datatoken + price) in one transaction.
/// @notice Both are EIP-1167 clones of fixed implementations. The owner (the deployer) sets the
/// marketplace operator (who settles orders and holds the delisting flag) and the fee; a dataset keeps
/// the fee it was published with.
contract DataFactory is Ownable {
    uint16 public constant MAX_FEE_BPS = 1_000;

    struct PublishParams {
        string name;
        string symbol;
        string metadataURI;
        bytes32 metadataHash;
        address paymentToken;
        uint256 price;
        uint64 epsilonCap;
        uint64 epsilonPerJobCap;
        uint64 deltaCap;
    }

    address public immutable nftImplementation;
    address public immutable datatokenImplementation;

    address private _operator;
    uint16 private _feeBps;
    address private _feeCollector;
    mapping(address datatoken => bool) private _isDatatoken;

    event DatasetPublished(
        address indexed nft,
        address indexed datatoken,
        address indexed owner,
        address paymentToken,
        uint256 price,
        uint64 epsilonCap,
        uint64 epsilonPerJobCap,
        uint64 deltaCap,
        bytes32 metadataHash
    );
    event OperatorChanged(address oldOperator, address newOperator);
    event FeeChanged(uint16 feeBps, address feeCollector);

    error InvalidCaps();
    error ZeroAddress();
    error FeeTooHigh(uint16 bps);

    constructor(
        address nftImplementation_,
        address datatokenImplementation_,
        address operator_,
        address feeCollector_,
        uint16 feeBps_
    ) Ownable(msg.sender) {
        if (nftImplementation_ == address(0) || datatokenImplementation_ == address(0)) revert ZeroAddress();
        nftImplementation = nftImplementation_;
        datatokenImplementation = datatokenImplementation_;
        _setOperator(operator_);
        _setFee(feeBps_, feeCollector_);
    }

    /// @notice Publish a dataset: `msg.sender` owns the new data NFT and collects its payments.
    function publish(PublishParams calldata p) external returns (address nft, address datatoken) {
        if (p.paymentToken == address(0)) revert ZeroAddress();
        if (p.epsilonPerJobCap == 0 || p.epsilonPerJobCap > p.epsilonCap) revert InvalidCaps();
        nft = Clones.cloneWithImmutableArgs(nftImplementation, abi.encodePacked(address(this)));
        // Everything fixed for the dataset's life goes into the clone's code (see Datatoken).
        datatoken = Clones.cloneWithImmutableArgs(
            datatokenImplementation,
            abi.encodePacked(
                nft, address(this), p.paymentToken, _feeCollector, _feeBps, p.epsilonCap, p.epsilonPerJobCap, p.deltaCap
            )
        );
        _isDatatoken[datatoken] = true;
        emit DatasetPublished(
            nft, datatoken, msg.sender, p.paymentToken, p.price, p.epsilonCap, p.epsilonPerJobCap, p.deltaCap, p.metadataHash
        );
        DataNFT(nft).initialize(msg.sender, datatoken, p.name, p.symbol, p.metadataURI, p.metadataHash);
        Datatoken(datatoken).initialize(p.price, msg.sender);
    }

    function setOperator(address newOperator) external onlyOwner {
        _setOperator(newOperator);
    }

    function setFee(uint16 bps, address collector) external onlyOwner {
        _setFee(bps, collector);
    }

    function operator() external view returns (address) {
        return _operator;
    }

    function feeBps() external view returns (uint16) {
        return _feeBps;
    }

    function feeCollector() external view returns (address) {
        return _feeCollector;
    }

    function isDatatoken(address account) external view returns (bool) {
        return _isDatatoken[account];
    }

    function _setOperator(address newOperator) private {
        if (newOperator == address(0)) revert ZeroAddress();
        emit OperatorChanged(_operator, newOperator);
        _operator = newOperator;
    }

    function _setFee(uint16 bps, address collector) private {
        if (bps > MAX_FEE_BPS) revert FeeTooHigh(bps);
        if (collector == address(0)) revert ZeroAddress();
        _feeBps = bps;
        _feeCollector = collector;
        emit FeeChanged(bps, collector);
    }
}
