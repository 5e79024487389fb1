// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Test} from "forge-std/Test.sol";

import {Datatoken} from "../contracts/Datatoken.sol";
import {MockStablecoin} from "../contracts/MockStablecoin.sol";
import {Fixture} from "./Fixture.sol";

/// @notice Drives one datatoken with random orders, receipts, refunds, reclaims, withdrawals, price
/// changes and time, and keeps the ghost state the invariants compare against.
contract Handler is Test {
    Datatoken internal immutable dt;
    MockStablecoin internal immutable usdc;
    uint256 internal immutable operatorPk;
    address internal immutable operator;
    address internal immutable provider;
    address internal immutable feeCollector;
    address[3] internal buyers;

    uint256[] public ids;
    mapping(uint256 id => Datatoken.Order) internal orders;
    mapping(uint256 id => uint8) public settled; // 0 open, else the status it was settled with
    uint256 internal nonce = 1_000_000;

    uint256 public doubleSettlements;
    uint256 public failedReclaims;
    uint64 public epsilonCharged; // receipted orders' epsilon: never released
    uint64 public deltaCharged;

    constructor(Datatoken dt_, MockStablecoin usdc_, uint256 operatorPk_, address provider_, address feeCollector_) {
        dt = dt_;
        usdc = usdc_;
        operatorPk = operatorPk_;
        operator = vm.addr(operatorPk_);
        provider = provider_;
        feeCollector = feeCollector_;
        for (uint256 i = 0; i < 3; i++) {
            buyers[i] = makeAddr(string(abi.encodePacked("buyer", i)));
            usdc.faucet(buyers[i], 10_000e6);
            vm.prank(buyers[i]);
            usdc.approve(address(dt), type(uint256).max);
        }
    }

    function accounts() external view returns (address[5] memory a) {
        a = [buyers[0], buyers[1], buyers[2], provider, feeCollector];
    }

    function idCount() external view returns (uint256) {
        return ids.length;
    }

    function orderOf(uint256 id) external view returns (Datatoken.Order memory) {
        return orders[id];
    }

    function placeOrder(uint256 who, uint64 epsilon, uint64 delta) external {
        address b = buyers[who % 3];
        epsilon = uint64(bound(epsilon, 1, dt.epsilonPerJobCap()));
        delta = uint64(bound(delta, 0, dt.deltaPerJobCap()));
        if (epsilon > dt.epsilonLeft() || delta > dt.deltaLeft()) return;
        uint256 amount = dt.price();
        if (usdc.balanceOf(b) < amount) usdc.faucet(b, 10_000e6);
        Datatoken.Ticket memory t = Datatoken.Ticket(epsilon, delta, keccak256("a"), amount, nonce++, uint64(block.timestamp));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(operatorPk, dt.ticketDigest(t, b));
        vm.prank(b);
        uint256 id = dt.buyAndOrder(t, abi.encodePacked(r, s, v), 0, 0, 0, 0);
        orders[id] = Datatoken.Order(b, epsilon, delta, amount, uint64(block.timestamp) + dt.orderWindow());
        ids.push(id);
    }

    function settle(uint256 pick, uint8 how) external {
        if (ids.length == 0) return;
        uint256 id = ids[pick % ids.length];
        Datatoken.Order memory o = orders[id];
        bool expired = block.timestamp > o.deadline;
        how = how % 3;
        bool ok;
        if (how == 0) {
            vm.prank(operator);
            (ok,) = address(dt).call(abi.encodeCall(dt.recordReceipt, (id, o, 0, 0, 0, 0)));
        } else if (how == 1) {
            vm.prank(operator);
            (ok,) = address(dt).call(abi.encodeCall(dt.refund, (id, o)));
        } else {
            (ok,) = address(dt).call(abi.encodeCall(dt.reclaim, (id, o)));
            if (!ok && expired && settled[id] == 0) failedReclaims += 1;
        }
        if (!ok) return;
        if (settled[id] != 0) doubleSettlements += 1;
        settled[id] = how == 0 ? 2 : how == 1 ? 3 : 4;
        if (how == 0) {
            epsilonCharged += o.epsilon;
            deltaCharged += o.delta;
        }
    }

    function withdraw(uint256 who) external {
        address a = this.accounts()[who % 5];
        if (dt.credits(a) != 0) dt.withdraw(a);
    }

    function setPrice(uint96 newPrice) external {
        vm.prank(provider);
        dt.setPrice(bound(newPrice, 0, 1_000e6));
    }

    function strayTransfer(uint32 amount) external {
        usdc.faucet(address(dt), amount);
    }

    function sweep() external {
        if (usdc.balanceOf(address(dt)) <= dt.held()) return;
        vm.prank(provider);
        dt.sweep(address(usdc), provider);
    }

    function warp(uint32 secondsForward) external {
        vm.warp(block.timestamp + bound(secondsForward, 1, 3 days));
    }
}

/// @notice The invariant campaign of issue 15 over the handler above.
contract InvariantTest is Fixture {
    Handler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new Handler(dt, usdc, OPERATOR_PK, provider, feeCollector);
        targetContract(address(handler));
    }

    /// Escrow equals the sum of open orders' payments (held = escrow + unwithdrawn credits), and the
    /// token balance always covers it.
    function invariant_escrowIsOpenPayments() public view {
        uint256 open;
        for (uint256 i = 0; i < handler.idCount(); i++) {
            uint256 id = handler.ids(i);
            if (handler.settled(id) == 0) open += handler.orderOf(id).amount;
        }
        uint256 credited;
        address[5] memory a = handler.accounts();
        for (uint256 i = 0; i < 5; i++) {
            credited += dt.credits(a[i]);
        }
        assertEq(dt.held() - credited, open);
        assertGe(usdc.balanceOf(address(dt)), dt.held());
    }

    /// Cumulative epsilon and delta never pass their caps, and equal open plus receipted orders'.
    function invariant_budgetWithinCaps() public view {
        assertLe(dt.epsilonOrdered(), dt.epsilonCap());
        assertLe(dt.deltaOrdered(), dt.deltaCap());
        uint64 epsilon = handler.epsilonCharged();
        uint64 delta = handler.deltaCharged();
        for (uint256 i = 0; i < handler.idCount(); i++) {
            uint256 id = handler.ids(i);
            if (handler.settled(id) == 0) {
                epsilon += handler.orderOf(id).epsilon;
                delta += handler.orderOf(id).delta;
            }
        }
        assertEq(dt.epsilonOrdered(), epsilon);
        assertEq(dt.deltaOrdered(), delta);
    }

    /// No order settles twice (so receipt, refund and reclaim are exclusive), and the chain's status
    /// is the one it settled with.
    function invariant_settledOnce() public view {
        assertEq(handler.doubleSettlements(), 0);
        for (uint256 i = 0; i < handler.idCount(); i++) {
            uint256 id = handler.ids(i);
            uint8 s = handler.settled(id);
            assertEq(dt.orderStatus(id), s == 0 ? 1 : s);
        }
    }

    /// An expired open order can always be reclaimed.
    function invariant_expiredAlwaysReclaimable() public view {
        assertEq(handler.failedReclaims(), 0);
    }
}
