// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {DataNFT} from "./DataNFT.sol";
import {Datatoken} from "./Datatoken.sol";

/// @title DataFactory: publishes a dataset (data NFT + datatoken + price) in one transaction.
/// @notice Both are EIP-1167 clones of fixed implementations. The owner (`Ownable2Step`; renouncing is
/// disabled) allow-lists payment tokens and proposes the operator (who signs order tickets, settles
/// orders and holds the listing flag) and the fee; a proposal takes effect only after
/// `parameterDelay` seconds, when anyone applies it. A dataset keeps the fee, the fee collector and
/// the order window it was published with; the operator is always the factory's current one.
contract DataFactory is Ownable2Step {
    using SafeERC20 for IERC20;

    uint16 public constant MAX_FEE_BPS = 1_000;
    uint32 public constant MIN_ORDER_WINDOW = 1 hours;
    uint32 public constant MAX_ORDER_WINDOW = 365 days;
    uint32 public constant MIN_PARAMETER_DELAY = 1 days;
    uint32 public constant MAX_PARAMETER_DELAY = 30 days;

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
        uint64 deltaPerJobCap;
    }

    address public immutable nftImplementation;
    address public immutable datatokenImplementation;
    /// @notice Seconds from an order to its deadline, for every dataset published here.
    uint32 public immutable orderWindow;
    /// @notice Seconds between proposing an operator or a fee and the change taking effect.
    uint32 public immutable parameterDelay;

    address private _operator;
    uint16 private _feeBps;
    address private _feeCollector;
    address private _pendingOperator;
    uint64 private _pendingOperatorEta;
    address private _pendingFeeCollector;
    uint16 private _pendingFeeBps;
    uint64 private _pendingFeeEta;
    mapping(address datatoken => bool) private _isDatatoken;
    mapping(address token => bool) private _isPaymentToken;

    event DatasetPublished(
        address indexed nft,
        address indexed datatoken,
        address indexed owner,
        address paymentToken,
        uint256 price,
        uint64 epsilonCap,
        uint64 epsilonPerJobCap,
        uint64 deltaCap,
        uint64 deltaPerJobCap,
        bytes32 metadataHash
    );
    event OperatorProposed(address newOperator, uint64 eta);
    event OperatorChanged(address oldOperator, address newOperator);
    event FeeProposed(uint16 feeBps, address feeCollector, uint64 eta);
    event FeeChanged(uint16 feeBps, address feeCollector);
    event PaymentTokenAllowed(address indexed token, bool allowed);
    event Swept(address indexed token, address indexed to, uint256 amount);

    error InvalidCaps();
    error ZeroAddress();
    error FeeTooHigh(uint16 bps);
    error InvalidOrderWindow(uint32 window);
    error InvalidParameterDelay(uint32 delay);
    error PaymentTokenNotAllowed(address token);
    error NothingPending();
    error TooEarly(uint64 eta);
    error RenounceDisabled();

    constructor(
        address nftImplementation_,
        address datatokenImplementation_,
        address operator_,
        address feeCollector_,
        uint16 feeBps_,
        uint32 orderWindow_,
        uint32 parameterDelay_
    ) Ownable(msg.sender) {
        if (nftImplementation_ == address(0) || datatokenImplementation_ == address(0)) revert ZeroAddress();
        if (orderWindow_ < MIN_ORDER_WINDOW || orderWindow_ > MAX_ORDER_WINDOW) {
            revert InvalidOrderWindow(orderWindow_);
        }
        if (parameterDelay_ < MIN_PARAMETER_DELAY || parameterDelay_ > MAX_PARAMETER_DELAY) {
            revert InvalidParameterDelay(parameterDelay_);
        }
        nftImplementation = nftImplementation_;
        datatokenImplementation = datatokenImplementation_;
        orderWindow = orderWindow_;
        parameterDelay = parameterDelay_;
        _setOperator(operator_);
        _checkFee(feeBps_, feeCollector_);
        _setFee(feeBps_, feeCollector_);
    }

    /// @notice Publish a dataset: `msg.sender` owns the new data NFT and collects its payments.
    /// Ordering starts closed until the operator opens it (a moderator's listing).
    function publish(PublishParams calldata p) external returns (address nft, address datatoken) {
        if (!_isPaymentToken[p.paymentToken]) revert PaymentTokenNotAllowed(p.paymentToken);
        if (p.epsilonPerJobCap == 0 || p.epsilonPerJobCap > p.epsilonCap || p.deltaPerJobCap > p.deltaCap) {
            revert InvalidCaps();
        }
        nft = Clones.cloneWithImmutableArgs(nftImplementation, abi.encodePacked(address(this)));
        // Everything fixed for the dataset's life goes into the clone's code (see Datatoken).
        datatoken = Clones.cloneWithImmutableArgs(
            datatokenImplementation,
            abi.encodePacked(
                nft,
                address(this),
                p.paymentToken,
                _feeCollector,
                _feeBps,
                orderWindow,
                p.epsilonCap,
                p.epsilonPerJobCap,
                p.deltaCap,
                p.deltaPerJobCap
            )
        );
        _isDatatoken[datatoken] = true;
        emit DatasetPublished(
            nft,
            datatoken,
            msg.sender,
            p.paymentToken,
            p.price,
            p.epsilonCap,
            p.epsilonPerJobCap,
            p.deltaCap,
            p.deltaPerJobCap,
            p.metadataHash
        );
        DataNFT(nft).initialize(msg.sender, datatoken, p.name, p.symbol, p.metadataURI, p.metadataHash);
        Datatoken(datatoken).initialize(p.price, msg.sender);
    }

    // ----- owner: delayed parameters -----

    /// @notice Owner: propose a new operator, in effect after `parameterDelay` (replaces a pending one).
    function proposeOperator(address newOperator) external onlyOwner {
        if (newOperator == address(0)) revert ZeroAddress();
        uint64 eta = uint64(block.timestamp) + parameterDelay;
        _pendingOperator = newOperator;
        _pendingOperatorEta = eta;
        emit OperatorProposed(newOperator, eta);
    }

    /// @notice Anyone, once the delay has passed: the proposed operator takes over.
    function applyOperator() external {
        address newOperator = _pendingOperator;
        if (newOperator == address(0)) revert NothingPending();
        if (block.timestamp < _pendingOperatorEta) revert TooEarly(_pendingOperatorEta);
        delete _pendingOperator;
        delete _pendingOperatorEta;
        _setOperator(newOperator);
    }

    /// @notice Owner: propose the fee for datasets published from then on (and its collector), in
    /// effect after `parameterDelay` (replaces a pending one).
    function proposeFee(uint16 bps, address collector) external onlyOwner {
        _checkFee(bps, collector);
        uint64 eta = uint64(block.timestamp) + parameterDelay;
        _pendingFeeBps = bps;
        _pendingFeeCollector = collector;
        _pendingFeeEta = eta;
        emit FeeProposed(bps, collector, eta);
    }

    /// @notice Anyone, once the delay has passed: the proposed fee applies to new datasets.
    function applyFee() external {
        address collector = _pendingFeeCollector;
        if (collector == address(0)) revert NothingPending();
        if (block.timestamp < _pendingFeeEta) revert TooEarly(_pendingFeeEta);
        uint16 bps = _pendingFeeBps;
        delete _pendingFeeCollector;
        delete _pendingFeeBps;
        delete _pendingFeeEta;
        _setFee(bps, collector);
    }

    // ----- owner: immediate -----

    /// @notice Owner: allow (or stop allowing) a payment token for new datasets; published datasets
    /// keep theirs. Allow only plain ERC-20s: no fee on transfer, no rebasing.
    function setPaymentToken(address token, bool allowed) external onlyOwner {
        if (token == address(0)) revert ZeroAddress();
        _isPaymentToken[token] = allowed;
        emit PaymentTokenAllowed(token, allowed);
    }

    /// @notice Owner: the factory never holds tokens; send any sent here by mistake to `to`.
    function sweep(address token, address to) external onlyOwner {
        if (to == address(0)) revert ZeroAddress();
        uint256 amount = IERC20(token).balanceOf(address(this));
        emit Swept(token, to, amount);
        IERC20(token).safeTransfer(to, amount);
    }

    /// @notice Disabled: an ownerless factory could never rotate a lost operator key.
    function renounceOwnership() public view override onlyOwner {
        revert RenounceDisabled();
    }

    // ----- views -----

    function operator() external view returns (address) {
        return _operator;
    }

    function feeBps() external view returns (uint16) {
        return _feeBps;
    }

    function feeCollector() external view returns (address) {
        return _feeCollector;
    }

    /// @notice The proposed operator and when it can be applied (zero when none).
    function pendingOperator() external view returns (address newOperator, uint64 eta) {
        return (_pendingOperator, _pendingOperatorEta);
    }

    /// @notice The proposed fee and collector and when they can be applied (zero when none).
    function pendingFee() external view returns (uint16 bps, address collector, uint64 eta) {
        return (_pendingFeeBps, _pendingFeeCollector, _pendingFeeEta);
    }

    function isDatatoken(address account) external view returns (bool) {
        return _isDatatoken[account];
    }

    function isPaymentToken(address token) external view returns (bool) {
        return _isPaymentToken[token];
    }

    function _setOperator(address newOperator) private {
        if (newOperator == address(0)) revert ZeroAddress();
        emit OperatorChanged(_operator, newOperator);
        _operator = newOperator;
    }

    function _checkFee(uint16 bps, address collector) private pure {
        if (bps > MAX_FEE_BPS) revert FeeTooHigh(bps);
        if (collector == address(0)) revert ZeroAddress();
    }

    function _setFee(uint16 bps, address collector) private {
        _feeBps = bps;
        _feeCollector = collector;
        emit FeeChanged(bps, collector);
    }
}
