// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {CloneArgs} from "./libraries/CloneArgs.sol";
import {IDataFactory} from "./interfaces/IDataFactory.sol";
import {IDataNFT} from "./interfaces/IDataNFT.sol";

/// @title Datatoken: one per dataset (an EIP-1167 clone), its order book, privacy budget and escrow.
/// @notice Every order carries an order ticket: an EIP-712 message signed by the marketplace's operator
/// key for this datatoken (the domain's `verifyingContract`), the buyer, the parameters hash, epsilon,
/// delta, price, an expiry and a nonce (which becomes the order id, so a ticket orders once). The
/// price is held here until the operator records a receipt (the provider and the fee collector are
/// credited) or refunds the buyer (credited back, budget released). An order the operator has not
/// settled by its deadline (ordering time + the factory's order window) can only be reclaimed: anyone
/// may call `reclaim`, the buyer is credited and the budget released. Payments are pulled
/// (`withdraw`), so a recipient that cannot receive blocks nobody else.
/// A new datatoken is closed to orders until the operator opens it (when a moderator lists it).
/// @dev Gas layout. Everything fixed at publish lives in the clone's immutable arguments (read with
/// EXTCODECOPY, no cold SLOAD): data NFT, factory, payment token, fee collector, fee bps, order window
/// and the four caps. An order reads and writes one slot (`_book`: budget used, escrow held, flags),
/// reads one (`_sale`: price, payment collector) and writes one: the order's commitment, the hash of
/// (consumer, epsilon, delta, amount, deadline), which settlement calls present again as `Order`.
/// After settlement the slot holds the final status, so the id (the ticket's nonce) stays used.
/// Datatokens are never minted: an order is the access right, and no `Transfer` is emitted for it.
contract Datatoken is ERC20, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    uint8 public constant ORDER_NONE = 0;
    uint8 public constant ORDER_OPEN = 1;
    uint8 public constant ORDER_RECEIPTED = 2;
    uint8 public constant ORDER_REFUNDED = 3;
    uint8 public constant ORDER_RECLAIMED = 4;

    /// @notice The EIP-712 type of an order ticket (the buyer is the sender of the order).
    bytes32 public constant TICKET_TYPEHASH = keccak256(
        "OrderTicket(address buyer,uint64 epsilon,uint64 delta,bytes32 algorithmHash,uint256 price,uint256 nonce,uint64 expiry)"
    );

    uint16 private constant BPS_DENOMINATOR = 10_000;
    uint8 private constant NFT_STATE_DEPRECATED = 1;
    uint8 private constant NFT_STATE_ORDERING_DISABLED = 2;
    uint8 private constant CLOSED_BY_NFT = 1;
    uint8 private constant CLOSED_BY_OPERATOR = 2;
    uint8 private constant CLOSED_FOREVER = 4; // the implementation itself

    // Immutable clone arguments (packed): dataNft 20 | factory 20 | paymentToken 20 | feeCollector 20 |
    // feeBps 2 | orderWindow 4 | epsilonCap 8 | epsilonPerJobCap 8 | deltaCap 8 | deltaPerJobCap 8 (118 bytes).
    uint256 private constant ARG_DATA_NFT = 0;
    uint256 private constant ARG_FACTORY = 20;
    uint256 private constant ARG_PAYMENT_TOKEN = 40;
    uint256 private constant ARG_FEE_COLLECTOR = 60;
    uint256 private constant ARG_FEE_BPS = 80;
    uint256 private constant ARG_ORDER_WINDOW = 82;
    uint256 private constant ARG_CAPS = 86;

    /// @notice What the operator signs (with the buyer, who sends the order); see TICKET_TYPEHASH.
    struct Ticket {
        uint64 epsilon;
        uint64 delta;
        bytes32 algorithmHash;
        uint256 price;
        uint256 nonce;
        uint64 expiry;
    }

    /// @notice An open order as committed at ordering (every field is in its `OrderStarted` event).
    struct Order {
        address consumer;
        uint64 epsilon;
        uint64 delta;
        uint256 amount;
        uint64 deadline;
    }

    /// @dev One slot, read and written by every order. `held` is everything this contract owes in
    /// the payment token: open orders' payments plus credits not yet withdrawn.
    struct Book {
        uint64 epsilonOrdered;
        uint64 deltaOrdered;
        uint96 held;
        uint8 closed; // bit 0: the NFT's state refuses orders; bit 1: the operator's flag; bit 2: implementation
        bool initialized;
    }

    /// @dev One slot: read by an order (price) and a receipt (collector).
    struct Sale {
        address paymentCollector;
        uint96 price;
    }

    Book private _book;
    Sale private _sale;
    /// @dev 0: none; 2, 3, 4: settled with that status; anything else: open, the order's commitment.
    mapping(uint256 orderId => bytes32) private _orders;
    mapping(address account => uint256) private _credits;

    event OrderStarted(
        uint256 indexed orderId,
        address indexed consumer,
        address indexed dataNft,
        uint64 epsilon,
        uint64 delta,
        bytes32 algorithmHash,
        uint256 amount,
        uint64 deadline
    );
    event ReceiptRecorded(
        uint256 indexed orderId,
        bytes32 datasetHash,
        bytes32 algorithmHash,
        bytes32 paramsHash,
        bytes32 resultHash,
        uint64 epsilon,
        uint64 delta,
        uint256 providerAmount,
        uint256 feeAmount
    );
    event OrderRefunded(uint256 indexed orderId, address indexed consumer, uint256 amount, uint64 epsilon, uint64 delta);
    event OrderReclaimed(
        uint256 indexed orderId, address indexed consumer, uint256 amount, uint64 epsilon, uint64 delta
    );
    event Withdrawn(address indexed account, uint256 amount);
    event Swept(address indexed token, address indexed to, uint256 amount);
    event PriceChanged(uint256 oldPrice, uint256 newPrice);
    event PaymentCollectorChanged(address oldCollector, address newCollector);
    event OperatorOrderingDisabled(bool disabled);
    event NftStateSynced(uint8 nftState, bool orderingOpen);

    error OrderingClosed();
    error TicketExpired(uint64 expiry);
    error TicketUsed(uint256 nonce);
    error TicketInvalid();
    error PriceMismatch(uint256 price, uint256 ticketPrice);
    error NotFree();
    error ZeroEpsilon();
    error EpsilonPerJobCapExceeded(uint64 requested, uint64 cap);
    error DeltaPerJobCapExceeded(uint64 requested, uint64 cap);
    error EpsilonCapExceeded(uint64 requested, uint64 left);
    error DeltaCapExceeded(uint64 requested, uint64 left);
    error NotOperator(address caller);
    error NotAuthorized(address caller);
    error OrderNotOpen(uint256 orderId, uint8 status);
    error OrderMismatch(uint256 orderId);
    error OrderExpired(uint256 orderId, uint64 deadline);
    error OrderNotExpired(uint256 orderId, uint64 deadline);
    error NothingToWithdraw(address account);
    error NothingToSweep(address token);
    error PriceTooHigh(uint256 price);
    error AlreadyInitialized();
    error ZeroAddress();

    /// @dev The implementation can never be initialised nor take an order.
    constructor() ERC20("Datatoken implementation", "DT") EIP712("PPDX Datatoken", "2") {
        _book.initialized = true;
        _book.closed = CLOSED_FOREVER;
    }

    /// @notice Called once by the factory in the publish transaction. Ordering starts closed.
    function initialize(uint256 price_, address paymentCollector_) external {
        if (msg.sender != CloneArgs.addressAt(ARG_FACTORY)) revert NotAuthorized(msg.sender);
        if (_book.initialized) revert AlreadyInitialized();
        _book = Book({epsilonOrdered: 0, deltaOrdered: 0, held: 0, closed: CLOSED_BY_OPERATOR, initialized: true});
        _sale = Sale({paymentCollector: paymentCollector_, price: _checkedPrice(price_)});
    }

    // ----- ordering -----

    /// @notice Buy compute access and start the order, in one transaction from the buyer, with an
    /// order ticket from the marketplace. With `permitDeadline != 0` the payment token's EIP-2612 permit
    /// (for exactly the price) is used first; with 0 an existing allowance is used. The price, which
    /// must equal the ticket's, is held in escrow here. Returns the order id (the ticket's nonce).
    function buyAndOrder(
        Ticket calldata ticket,
        bytes calldata signature,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant returns (uint256 orderId) {
        uint256 amount = _sale.price;
        orderId = _startOrder(ticket, signature, amount);
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
    }

    /// @notice The dispenser path of a free dataset (price 0): same ticket, checks and event, amount 0.
    function dispenseAndOrder(Ticket calldata ticket, bytes calldata signature)
        external
        nonReentrant
        returns (uint256 orderId)
    {
        if (_sale.price != 0) revert NotFree();
        orderId = _startOrder(ticket, signature, 0);
    }

    /// @dev Checks and effects of a new order (no external call but the factory's operator view).
    function _startOrder(Ticket calldata ticket, bytes calldata signature, uint256 amount)
        private
        returns (uint256 orderId)
    {
        Book memory book = _book;
        if (book.closed != 0) revert OrderingClosed();
        if (block.timestamp > ticket.expiry) revert TicketExpired(ticket.expiry);
        orderId = ticket.nonce;
        if (_orders[orderId] != 0) revert TicketUsed(orderId);
        _checkTicket(ticket, signature);
        if (ticket.price != amount) revert PriceMismatch(amount, ticket.price);
        _reserve(book, ticket.epsilon, ticket.delta);
        book.held += uint96(amount); // amount is a stored price, so it fits; the sum is checked
        _book = book;
        uint64 deadline = uint64(block.timestamp) + orderWindow();
        _orders[orderId] = _commitment(msg.sender, ticket.epsilon, ticket.delta, amount, deadline);
        emit OrderStarted(
            orderId,
            msg.sender,
            CloneArgs.addressAt(ARG_DATA_NFT),
            ticket.epsilon,
            ticket.delta,
            ticket.algorithmHash,
            amount,
            deadline
        );
    }

    /// @dev Check the order's epsilon and delta against the per-job and total caps and add them to `book`.
    function _reserve(Book memory book, uint64 epsilon, uint64 delta) private view {
        if (epsilon == 0) revert ZeroEpsilon();
        uint256 caps = uint256(CloneArgs.word(ARG_CAPS));
        uint64 epsilonCap_ = uint64(caps >> 192);
        uint64 epsilonPerJobCap_ = uint64(caps >> 128);
        uint64 deltaCap_ = uint64(caps >> 64);
        uint64 deltaPerJobCap_ = uint64(caps);
        if (epsilon > epsilonPerJobCap_) revert EpsilonPerJobCapExceeded(epsilon, epsilonPerJobCap_);
        if (delta > deltaPerJobCap_) revert DeltaPerJobCapExceeded(delta, deltaPerJobCap_);
        uint64 left = epsilonCap_ - book.epsilonOrdered;
        if (epsilon > left) revert EpsilonCapExceeded(epsilon, left);
        left = deltaCap_ - book.deltaOrdered;
        if (delta > left) revert DeltaCapExceeded(delta, left);
        unchecked {
            // Both are within their caps (checked just above).
            book.epsilonOrdered += epsilon;
            book.deltaOrdered += delta;
        }
    }

    /// @dev The ticket must be signed by the factory's current operator for `msg.sender`.
    function _checkTicket(Ticket calldata t, bytes calldata signature) private view {
        // The third value only details a malformed signature, which TicketInvalid reports as a whole.
        // slither-disable-next-line unused-return
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(ticketDigest(t, msg.sender), signature);
        if (err != ECDSA.RecoverError.NoError || signer != _operator()) revert TicketInvalid();
    }

    // ----- settlement -----

    /// @notice Operator only, until the order's deadline: record a finished job's receipt. The order
    /// is charged exactly the epsilon and delta it reserved; `amount - fee` is credited to the payment
    /// collector and `fee` (rounded down) to the fee collector.
    function recordReceipt(
        uint256 orderId,
        Order calldata order,
        bytes32 datasetHash,
        bytes32 algorithmHash,
        bytes32 paramsHash,
        bytes32 resultHash
    ) external nonReentrant {
        _onlyOperator();
        _close(orderId, order, ORDER_RECEIPTED);
        if (block.timestamp > order.deadline) revert OrderExpired(orderId, order.deadline);
        uint256 amount = order.amount;
        uint256 feeAmount = Math.mulDiv(amount, feeBps(), BPS_DENOMINATOR);
        uint256 providerAmount = amount - feeAmount;
        if (providerAmount != 0) _credits[_sale.paymentCollector] += providerAmount;
        if (feeAmount != 0) _credits[CloneArgs.addressAt(ARG_FEE_COLLECTOR)] += feeAmount;
        emit ReceiptRecorded(
            orderId,
            datasetHash,
            algorithmHash,
            paramsHash,
            resultHash,
            order.epsilon,
            order.delta,
            providerAmount,
            feeAmount
        );
    }

    /// @notice Operator only, until the order's deadline: refund a job that released nothing. The
    /// payment is credited back to the consumer and the order's epsilon and delta go back to the budget.
    function refund(uint256 orderId, Order calldata order) external nonReentrant {
        _onlyOperator();
        _close(orderId, order, ORDER_REFUNDED);
        if (block.timestamp > order.deadline) revert OrderExpired(orderId, order.deadline);
        _release(order);
        emit OrderRefunded(orderId, order.consumer, order.amount, order.epsilon, order.delta);
    }

    /// @notice Anyone, after the order's deadline: the consumer is credited the payment and the order's
    /// epsilon and delta go back to the budget (the operator did not settle in time).
    function reclaim(uint256 orderId, Order calldata order) external nonReentrant {
        _close(orderId, order, ORDER_RECLAIMED);
        if (block.timestamp <= order.deadline) revert OrderNotExpired(orderId, order.deadline);
        _release(order);
        emit OrderReclaimed(orderId, order.consumer, order.amount, order.epsilon, order.delta);
    }

    /// @notice Anyone: pay `account` everything credited to it (receipts, refunds, reclaims).
    function withdraw(address account) external nonReentrant {
        uint256 amount = _credits[account];
        if (amount == 0) revert NothingToWithdraw(account);
        _credits[account] = 0;
        _book.held -= uint96(amount);
        emit Withdrawn(account, amount);
        IERC20(CloneArgs.addressAt(ARG_PAYMENT_TOKEN)).safeTransfer(account, amount);
    }

    /// @notice NFT owner: send `token` sent here by mistake to `to`. Never touches what is held for
    /// orders and credits (for the payment token only the balance above `held()` is stray).
    function sweep(address token, address to) external nonReentrant {
        if (msg.sender != IDataNFT(dataNft()).ownerOf(1)) revert NotAuthorized(msg.sender);
        if (to == address(0)) revert ZeroAddress();
        uint256 balance = IERC20(token).balanceOf(address(this));
        uint256 reserved = token == CloneArgs.addressAt(ARG_PAYMENT_TOKEN) ? _book.held : 0;
        if (balance <= reserved) revert NothingToSweep(token);
        uint256 amount = balance - reserved;
        emit Swept(token, to, amount);
        IERC20(token).safeTransfer(to, amount);
    }

    /// @dev Mark an open order settled with `status`, after checking it is the one committed.
    function _close(uint256 orderId, Order calldata order, uint8 status) private {
        bytes32 stored = _orders[orderId];
        uint8 current = _status(stored);
        if (current != ORDER_OPEN) revert OrderNotOpen(orderId, current);
        if (stored != _commitment(order.consumer, order.epsilon, order.delta, order.amount, order.deadline)) {
            revert OrderMismatch(orderId);
        }
        _orders[orderId] = bytes32(uint256(status));
    }

    /// @dev Credit the payment back to the consumer and give the order's budget back.
    function _release(Order calldata order) private {
        Book storage book = _book;
        book.epsilonOrdered -= order.epsilon;
        book.deltaOrdered -= order.delta;
        if (order.amount != 0) _credits[order.consumer] += order.amount;
    }

    // ----- settings -----

    /// @notice NFT owner or manager. Open orders keep the amount they paid.
    function setPrice(uint256 newPrice) external {
        IDataNFT nft = IDataNFT(dataNft());
        if (msg.sender != nft.ownerOf(1) && !nft.isManager(msg.sender)) revert NotAuthorized(msg.sender);
        uint256 oldPrice = _sale.price;
        _sale.price = _checkedPrice(newPrice);
        emit PriceChanged(oldPrice, newPrice);
    }

    /// @notice NFT owner only; the account credited `amount - fee` on each receipt.
    function setPaymentCollector(address newCollector) external {
        if (msg.sender != IDataNFT(dataNft()).ownerOf(1)) revert NotAuthorized(msg.sender);
        if (newCollector == address(0)) revert ZeroAddress();
        _setPaymentCollector(newCollector);
    }

    /// @notice Called by the data NFT when it changes hands: its new owner collects from now on
    /// (what was credited to the old collector stays theirs).
    function resetPaymentCollector(address newOwner) external {
        if (msg.sender != dataNft()) revert NotAuthorized(msg.sender);
        _setPaymentCollector(newOwner);
    }

    /// @notice Operator only: the marketplace's listing flag. A new datatoken starts disabled; the
    /// operator enables it when a moderator lists the dataset, and disables it on delisting.
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

    function _setPaymentCollector(address newCollector) private {
        address oldCollector = _sale.paymentCollector;
        _sale.paymentCollector = newCollector;
        emit PaymentCollectorChanged(oldCollector, newCollector);
    }

    function _checkedPrice(uint256 newPrice) private pure returns (uint96) {
        if (newPrice > type(uint96).max) revert PriceTooHigh(newPrice);
        return uint96(newPrice);
    }

    function _onlyOperator() private view {
        if (msg.sender != _operator()) revert NotOperator(msg.sender);
    }

    function _operator() private view returns (address) {
        return IDataFactory(CloneArgs.addressAt(ARG_FACTORY)).operator();
    }

    function _commitment(address consumer, uint64 epsilon, uint64 delta, uint256 amount, uint64 deadline)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(consumer, epsilon, delta, amount, deadline));
    }

    function _status(bytes32 stored) private pure returns (uint8) {
        uint256 value = uint256(stored);
        if (value == 0) return ORDER_NONE;
        if (value <= ORDER_RECLAIMED) return uint8(value);
        return ORDER_OPEN;
    }

    // ----- views -----

    /// @notice The EIP-712 digest the operator signs for `buyer` (domain "PPDX Datatoken", version "2",
    /// this chain, this datatoken; also `eip712Domain()`).
    function ticketDigest(Ticket calldata t, address buyer) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(TICKET_TYPEHASH, buyer, t.epsilon, t.delta, t.algorithmHash, t.price, t.nonce, t.expiry)
            )
        );
    }

    /// @notice The commitment an open order's slot holds: keccak256(abi.encode(order fields)).
    function orderCommitment(Order calldata order) external pure returns (bytes32) {
        return _commitment(order.consumer, order.epsilon, order.delta, order.amount, order.deadline);
    }

    /// @notice `0 None, 1 Open, 2 Receipted, 3 Refunded, 4 Reclaimed` and, while open, the commitment.
    function getOrder(uint256 orderId) external view returns (uint8 status, bytes32 commitment) {
        bytes32 stored = _orders[orderId];
        status = _status(stored);
        if (status == ORDER_OPEN) commitment = stored;
    }

    function orderStatus(uint256 orderId) external view returns (uint8) {
        return _status(_orders[orderId]);
    }

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

    /// @notice Seconds from ordering to an order's deadline (fixed by the factory at publish).
    function orderWindow() public view returns (uint32) {
        return uint32(bytes4(CloneArgs.word(ARG_ORDER_WINDOW)));
    }

    function epsilonCap() public view returns (uint64) {
        return uint64(bytes8(CloneArgs.word(ARG_CAPS)));
    }

    function epsilonPerJobCap() external view returns (uint64) {
        return uint64(bytes8(CloneArgs.word(ARG_CAPS + 8)));
    }

    function deltaCap() public view returns (uint64) {
        return uint64(bytes8(CloneArgs.word(ARG_CAPS + 16)));
    }

    function deltaPerJobCap() external view returns (uint64) {
        return uint64(bytes8(CloneArgs.word(ARG_CAPS + 24)));
    }

    function price() external view returns (uint256) {
        return _sale.price;
    }

    function paymentCollector() external view returns (address) {
        return _sale.paymentCollector;
    }

    function epsilonOrdered() external view returns (uint64) {
        return _book.epsilonOrdered;
    }

    function deltaOrdered() external view returns (uint64) {
        return _book.deltaOrdered;
    }

    function epsilonLeft() external view returns (uint64) {
        return epsilonCap() - _book.epsilonOrdered;
    }

    function deltaLeft() external view returns (uint64) {
        return deltaCap() - _book.deltaOrdered;
    }

    /// @notice The payment token this contract owes: open orders' payments plus unwithdrawn credits.
    function held() external view returns (uint256) {
        return _book.held;
    }

    /// @notice What `withdraw(account)` would pay now.
    function credits(address account) external view returns (uint256) {
        return _credits[account];
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
