// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {CloneArgs} from "./libraries/CloneArgs.sol";
import {IDataFactory} from "./interfaces/IDataFactory.sol";
import {IDataNFT} from "./interfaces/IDataNFT.sol";

/// @title Datatoken: one per dataset (an EIP-1167 clone), its order book, privacy budget and escrow.
/// @notice A buyer buys and orders in one transaction (`buyAndOrder`, with an EIP-2612 permit on the
/// payment token, or `dispenseAndOrder` for a free dataset). The price is held here until the
/// marketplace operator records a receipt (pays provider and fee collector) or refunds the buyer.
/// The cumulative epsilon ordered is kept here and may never pass the provider's cap.
/// @dev Gas layout. Everything fixed at publish lives in the clone's immutable arguments (read with
/// EXTCODECOPY, no cold SLOAD): data NFT, factory, payment token, fee collector, fee bps and the three
/// caps. What an order reads and writes is one slot (`_book`) plus the current price (`_prices`), and
/// an order is one slot (`Order`): it stores the price epoch rather than the amount, since every
/// price ever set stays in `_prices`.
/// Datatokens never stay in a wallet: an order mints one to the consumer and burns it in the same
/// call. Balances and total supply would end where they started, so only the two `Transfer` events
/// are emitted and no balance slot is written.
contract Datatoken is ERC20, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    uint8 public constant ORDER_NONE = 0;
    uint8 public constant ORDER_OPEN = 1;
    uint8 public constant ORDER_RECEIPTED = 2;
    uint8 public constant ORDER_REFUNDED = 3;

    uint16 private constant BPS_DENOMINATOR = 10_000;
    uint256 private constant ONE_DATATOKEN = 1e18;
    uint8 private constant NFT_STATE_DEPRECATED = 1;
    uint8 private constant NFT_STATE_ORDERING_DISABLED = 2;
    uint8 private constant CLOSED_BY_NFT = 1;
    uint8 private constant CLOSED_BY_OPERATOR = 2;

    // Immutable clone arguments (packed): dataNft 20 | factory 20 | paymentToken 20 | feeCollector 20 |
    // feeBps 2 | epsilonCap 8 | epsilonPerJobCap 8 | deltaCap 8  (106 bytes).
    uint256 private constant ARG_DATA_NFT = 0;
    uint256 private constant ARG_FACTORY = 20;
    uint256 private constant ARG_PAYMENT_TOKEN = 40;
    uint256 private constant ARG_FEE_COLLECTOR = 60;
    uint256 private constant ARG_FEE_BPS = 80;
    uint256 private constant ARG_CAPS = 82;

    /// @dev One slot, read and written by every order.
    struct Book {
        uint64 epsilonOrdered;
        uint64 orderCount;
        uint24 priceEpoch;
        uint8 closed; // bit 0: the NFT's state refuses orders; bit 1: the operator's flag
        bool initialized;
    }

    /// @dev One slot per order.
    struct Order {
        address consumer;
        uint64 epsilon;
        uint24 priceEpoch;
        uint8 status;
    }

    Book private _book;
    address private _paymentCollector;
    mapping(uint256 epoch => uint256 price) private _prices;
    mapping(uint256 orderId => Order) private _orders;

    event OrderStarted(
        uint256 indexed orderId,
        address indexed consumer,
        address indexed dataNft,
        uint64 epsilon,
        uint64 delta,
        bytes32 algorithmHash,
        uint256 amount
    );
    event ReceiptRecorded(
        uint256 indexed orderId,
        bytes32 datasetHash,
        bytes32 algorithmHash,
        bytes32 paramsHash,
        bytes32 resultHash,
        uint64 epsilonSpent,
        uint256 providerAmount,
        uint256 feeAmount
    );
    event OrderRefunded(uint256 indexed orderId, address indexed consumer, uint256 amount, uint64 epsilonReleased);
    event PriceChanged(uint256 oldPrice, uint256 newPrice);
    event PaymentCollectorChanged(address oldCollector, address newCollector);
    event OperatorOrderingDisabled(bool disabled);
    event NftStateSynced(uint8 nftState, bool orderingOpen);

    error EpsilonCapExceeded(uint64 requested, uint64 left);
    error EpsilonPerJobCapExceeded(uint64 requested, uint64 cap);
    error DeltaCapExceeded(uint64 requested, uint64 cap);
    error ZeroEpsilon();
    error OrderingClosed();
    error PriceAboveMax(uint256 price, uint256 maxPrice);
    error NotFree();
    error NotOperator(address caller);
    error NotAuthorized(address caller);
    error OrderNotOpen(uint256 orderId, uint8 status);
    error EpsilonSpentAboveOrdered(uint64 spent, uint64 ordered);
    error AlreadyInitialized();
    error ZeroAddress();

    /// @dev The implementation itself can never be initialised.
    constructor() ERC20("Datatoken implementation", "DT") {
        _book.initialized = true;
    }

    /// @notice Called once by the factory in the publish transaction.
    function initialize(uint256 price_, address paymentCollector_) external {
        if (msg.sender != CloneArgs.addressAt(ARG_FACTORY)) revert NotAuthorized(msg.sender);
        if (_book.initialized) revert AlreadyInitialized();
        // Writing the book now (initialized = true) makes it a non-zero slot, so the first order pays
        // 2,900 gas to update it instead of 22,100 to create it.
        _book.initialized = true;
        _paymentCollector = paymentCollector_;
        if (price_ != 0) _prices[0] = price_;
    }

    // ----- ordering -----

    /// @notice Buy compute access and start the order, in one transaction from the consumer.
    /// With `permitDeadline != 0` the payment token's EIP-2612 permit (for exactly the price) is used
    /// first; with 0 an existing allowance is used. The price is held in escrow here.
    function buyAndOrder(
        uint64 epsilon,
        uint64 delta,
        bytes32 algorithmHash,
        uint256 maxPrice,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant returns (uint256 orderId) {
        Book memory book = _book;
        orderId = _startOrder(book, epsilon, delta);
        uint256 amount = _prices[book.priceEpoch];
        if (amount > maxPrice) revert PriceAboveMax(amount, maxPrice);
        if (amount != 0) {
            IERC20 token = IERC20(CloneArgs.addressAt(ARG_PAYMENT_TOKEN));
            if (permitDeadline != 0) {
                // A permit already used (e.g. front-run from the mempool) must not block the order:
                // the transfer below still needs the allowance, so nothing is skipped.
                try IERC20Permit(address(token)).permit(msg.sender, address(this), amount, permitDeadline, v, r, s) {}
                catch {}
            }
            token.safeTransferFrom(msg.sender, address(this), amount);
        }
        _emitOrderStarted(orderId, epsilon, delta, algorithmHash, amount);
    }

    /// @notice The dispenser path of a free dataset (price 0): same checks and event, amount 0.
    function dispenseAndOrder(uint64 epsilon, uint64 delta, bytes32 algorithmHash)
        external
        nonReentrant
        returns (uint256 orderId)
    {
        Book memory book = _book;
        orderId = _startOrder(book, epsilon, delta);
        if (_prices[book.priceEpoch] != 0) revert NotFree();
        _emitOrderStarted(orderId, epsilon, delta, algorithmHash, 0);
    }

    /// @dev Checks and effects of a new order (no external call): budget, caps, the order's slot.
    function _startOrder(Book memory book, uint64 epsilon, uint64 delta) private returns (uint256 orderId) {
        if (book.closed != 0) revert OrderingClosed();
        if (epsilon == 0) revert ZeroEpsilon();
        uint256 caps = uint256(CloneArgs.word(ARG_CAPS));
        uint64 epsilonCap_ = uint64(caps >> 192);
        uint64 perJobCap = uint64(caps >> 128);
        uint64 deltaCap_ = uint64(caps >> 64);
        if (epsilon > perJobCap) revert EpsilonPerJobCapExceeded(epsilon, perJobCap);
        if (delta > deltaCap_) revert DeltaCapExceeded(delta, deltaCap_);
        uint64 left = epsilonCap_ - book.epsilonOrdered;
        if (epsilon > left) revert EpsilonCapExceeded(epsilon, left);
        unchecked {
            // epsilon <= left, and 2**64 orders are out of reach.
            book.epsilonOrdered += epsilon;
            book.orderCount += 1;
        }
        _book = book;
        orderId = book.orderCount;
        _orders[orderId] = Order({consumer: msg.sender, epsilon: epsilon, priceEpoch: book.priceEpoch, status: ORDER_OPEN});
    }

    function _emitOrderStarted(uint256 orderId, uint64 epsilon, uint64 delta, bytes32 algorithmHash, uint256 amount)
        private
    {
        emit Transfer(address(0), msg.sender, ONE_DATATOKEN);
        emit Transfer(msg.sender, address(0), ONE_DATATOKEN);
        emit OrderStarted(orderId, msg.sender, CloneArgs.addressAt(ARG_DATA_NFT), epsilon, delta, algorithmHash, amount);
    }

    // ----- settlement (operator) -----

    /// @notice Record a finished job's receipt: pays `price - fee` to the payment collector and `fee`
    /// (rounded down) to the fee collector, and releases the unused epsilon to the budget.
    function recordReceipt(
        uint256 orderId,
        bytes32 datasetHash,
        bytes32 algorithmHash,
        bytes32 paramsHash,
        bytes32 resultHash,
        uint64 epsilonSpent
    ) external nonReentrant {
        _onlyOperator();
        Order memory order = _openOrder(orderId);
        if (epsilonSpent > order.epsilon) revert EpsilonSpentAboveOrdered(epsilonSpent, order.epsilon);
        _orders[orderId].status = ORDER_RECEIPTED;
        uint64 released = order.epsilon - epsilonSpent;
        if (released != 0) _book.epsilonOrdered -= released;
        uint256 amount = _prices[order.priceEpoch];
        uint256 feeAmount = Math.mulDiv(amount, feeBps(), BPS_DENOMINATOR);
        uint256 providerAmount = amount - feeAmount;
        emit ReceiptRecorded(
            orderId, datasetHash, algorithmHash, paramsHash, resultHash, epsilonSpent, providerAmount, feeAmount
        );
        IERC20 token = IERC20(CloneArgs.addressAt(ARG_PAYMENT_TOKEN));
        if (providerAmount != 0) token.safeTransfer(_paymentCollector, providerAmount);
        if (feeAmount != 0) token.safeTransfer(CloneArgs.addressAt(ARG_FEE_COLLECTOR), feeAmount);
    }

    /// @notice Refund a job that failed before touching data: the payment goes back to the consumer
    /// and the order's whole epsilon goes back to the budget.
    function refund(uint256 orderId) external nonReentrant {
        _onlyOperator();
        Order memory order = _openOrder(orderId);
        _orders[orderId].status = ORDER_REFUNDED;
        _book.epsilonOrdered -= order.epsilon;
        uint256 amount = _prices[order.priceEpoch];
        emit OrderRefunded(orderId, order.consumer, amount, order.epsilon);
        if (amount != 0) IERC20(CloneArgs.addressAt(ARG_PAYMENT_TOKEN)).safeTransfer(order.consumer, amount);
    }

    function _openOrder(uint256 orderId) private view returns (Order memory order) {
        order = _orders[orderId];
        if (order.status != ORDER_OPEN) revert OrderNotOpen(orderId, order.status);
    }

    // ----- settings -----

    /// @notice NFT owner or manager. Orders already open keep the price they paid.
    function setPrice(uint256 newPrice) external {
        IDataNFT nft = IDataNFT(dataNft());
        if (msg.sender != nft.ownerOf(1) && !nft.isManager(msg.sender)) revert NotAuthorized(msg.sender);
        Book storage book = _book;
        uint256 oldPrice = _prices[book.priceEpoch];
        uint24 epoch = book.priceEpoch + 1;
        book.priceEpoch = epoch;
        _prices[epoch] = newPrice;
        emit PriceChanged(oldPrice, newPrice);
    }

    /// @notice NFT owner only; the receiver of `price - fee` on each receipt.
    function setPaymentCollector(address newCollector) external {
        if (msg.sender != IDataNFT(dataNft()).ownerOf(1)) revert NotAuthorized(msg.sender);
        if (newCollector == address(0)) revert ZeroAddress();
        address oldCollector = _paymentCollector;
        _paymentCollector = newCollector;
        emit PaymentCollectorChanged(oldCollector, newCollector);
    }

    /// @notice Operator only: the marketplace's own flag for a delisted dataset.
    function setOperatorOrderingDisabled(bool disabled) external {
        _onlyOperator();
        if (disabled) _book.closed |= CLOSED_BY_OPERATOR;
        else _book.closed &= ~CLOSED_BY_OPERATOR;
        emit OperatorOrderingDisabled(disabled);
    }

    /// @notice Called by the data NFT whenever its state changes.
    function syncNftState(uint8 nftState) external {
        if (msg.sender != dataNft()) revert NotAuthorized(msg.sender);
        bool refuses = nftState == NFT_STATE_DEPRECATED || nftState == NFT_STATE_ORDERING_DISABLED;
        if (refuses) _book.closed |= CLOSED_BY_NFT;
        else _book.closed &= ~CLOSED_BY_NFT;
        emit NftStateSynced(nftState, _book.closed == 0);
    }

    function _onlyOperator() private view {
        if (msg.sender != IDataFactory(CloneArgs.addressAt(ARG_FACTORY)).operator()) revert NotOperator(msg.sender);
    }

    // ----- views -----

    function dataNft() public view returns (address) {
        return CloneArgs.addressAt(ARG_DATA_NFT);
    }

    function factory() external view returns (address) {
        return CloneArgs.addressAt(ARG_FACTORY);
    }

    function paymentToken() external view returns (address) {
        return CloneArgs.addressAt(ARG_PAYMENT_TOKEN);
    }

    function feeCollector() external view returns (address) {
        return CloneArgs.addressAt(ARG_FEE_COLLECTOR);
    }

    function feeBps() public view returns (uint16) {
        return uint16(bytes2(CloneArgs.word(ARG_FEE_BPS)));
    }

    function epsilonCap() public view returns (uint64) {
        return uint64(bytes8(CloneArgs.word(ARG_CAPS)));
    }

    function epsilonPerJobCap() external view returns (uint64) {
        return uint64(bytes8(CloneArgs.word(ARG_CAPS + 8)));
    }

    function deltaCap() external view returns (uint64) {
        return uint64(bytes8(CloneArgs.word(ARG_CAPS + 16)));
    }

    function price() external view returns (uint256) {
        return _prices[_book.priceEpoch];
    }

    function paymentCollector() external view returns (address) {
        return _paymentCollector;
    }

    function epsilonOrdered() external view returns (uint64) {
        return _book.epsilonOrdered;
    }

    function epsilonLeft() external view returns (uint64) {
        return epsilonCap() - _book.epsilonOrdered;
    }

    function orderCount() external view returns (uint256) {
        return _book.orderCount;
    }

    function orderStatus(uint256 orderId) external view returns (uint8) {
        return _orders[orderId].status;
    }

    /// @notice An order as stored: consumer, epsilon ordered, amount paid (in escrow while open), status.
    function getOrder(uint256 orderId)
        external
        view
        returns (address consumer, uint64 epsilon, uint256 amount, uint8 status)
    {
        Order memory order = _orders[orderId];
        return (order.consumer, order.epsilon, order.status == ORDER_NONE ? 0 : _prices[order.priceEpoch], order.status);
    }

    function operatorOrderingDisabled() external view returns (bool) {
        return _book.closed & CLOSED_BY_OPERATOR != 0;
    }

    function orderingOpen() external view returns (bool) {
        return _book.closed == 0;
    }

    /// @notice The dataset's name, from its data NFT.
    function name() public view override returns (string memory) {
        return IDataNFT(dataNft()).name();
    }

    /// @notice The dataset's symbol, from its data NFT.
    function symbol() public view override returns (string memory) {
        return IDataNFT(dataNft()).symbol();
    }
}
