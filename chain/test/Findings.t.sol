// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Vm} from "forge-std/Vm.sol";

import {DataFactory} from "../contracts/DataFactory.sol";
import {Datatoken} from "../contracts/Datatoken.sol";
import {Fixture} from "./Fixture.sol";

/// @notice One test per finding of issue 15, named after it.
contract FindingsTest is Fixture {
    /// Finding 1: nobody orders (free or paid) without a ticket signed by the operator for them.
    function test_Finding1_BudgetSquatting_orderNeedsOperatorTicket() public {
        (, Datatoken free) = publish(provider, 0);
        list(free);
        address squatter = makeAddr("squatter");
        Datatoken.Ticket memory t = ticket(EPSILON_PER_JOB, 0, 0);

        // No signature, a self-signed ticket, the operator's ticket for someone else: all refused.
        vm.startPrank(squatter);
        vm.expectRevert(Datatoken.TicketInvalid.selector);
        free.dispenseAndOrder(t, "");
        bytes memory selfSigned = sign(0x5EED, free, t, squatter);
        vm.expectRevert(Datatoken.TicketInvalid.selector);
        free.dispenseAndOrder(t, selfSigned);
        bytes memory forBuyer = sign(OPERATOR_PK, free, t, buyer);
        vm.expectRevert(Datatoken.TicketInvalid.selector);
        free.dispenseAndOrder(t, forBuyer);
        vm.stopPrank();
        assertEq(free.epsilonOrdered(), 0);

        // A real ticket orders once; replaying it or using it after its expiry fails.
        vm.prank(buyer);
        free.dispenseAndOrder(t, forBuyer);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.TicketUsed.selector, t.nonce));
        free.dispenseAndOrder(t, forBuyer);
        Datatoken.Ticket memory late = ticket(1, 0, 0);
        bytes memory lateSig = sign(OPERATOR_PK, free, late, buyer);
        vm.warp(late.expiry + 1);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.TicketExpired.selector, late.expiry));
        free.dispenseAndOrder(late, lateSig);
    }

    /// Finding 2: after the deadline the buyer gets the payment back and the budget is released; the
    /// operator cannot settle; ownership is two-step, cannot be renounced, parameters are delayed.
    function test_Finding2_NoExitForBuyer_deadlineReclaimAndDelayedOwner() public {
        (uint256 id, Datatoken.Order memory o) = order(dt, buyer, EPSILON, DELTA);
        vm.warp(o.deadline + 1);
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.OrderExpired.selector, id, o.deadline));
        dt.recordReceipt(id, o, 0, 0, 0, 0);
        vm.prank(makeAddr("anyone"));
        dt.reclaim(id, o);
        assertEq(dt.epsilonOrdered(), 0);
        assertEq(dt.deltaOrdered(), 0);
        uint256 before = usdc.balanceOf(buyer);
        dt.withdraw(buyer);
        assertEq(usdc.balanceOf(buyer) - before, PRICE);

        vm.prank(deployer);
        vm.expectRevert(DataFactory.RenounceDisabled.selector);
        factory.renounceOwnership();
        vm.prank(deployer);
        factory.transferOwnership(makeAddr("multisig"));
        assertEq(factory.owner(), deployer); // until accepted
        vm.prank(deployer);
        factory.proposeOperator(makeAddr("newOperator"));
        vm.expectRevert(abi.encodeWithSelector(DataFactory.TooEarly.selector, uint64(block.timestamp) + DELAY));
        factory.applyOperator();
        assertEq(factory.operator(), operator);
    }

    /// Finding 3: a new datatoken refuses orders until the operator opens it.
    function test_Finding3_OrderingOpenFromPublish_startsClosed() public {
        (, Datatoken fresh) = publish(provider, 0);
        assertFalse(fresh.orderingOpen());
        assertTrue(fresh.operatorOrderingDisabled());
        Datatoken.Ticket memory t = ticket(EPSILON, 0, 0);
        bytes memory sig = sign(OPERATOR_PK, fresh, t, buyer);
        vm.prank(buyer);
        vm.expectRevert(Datatoken.OrderingClosed.selector);
        fresh.dispenseAndOrder(t, sig);
        list(fresh);
        vm.prank(buyer);
        fresh.dispenseAndOrder(t, sig);
    }

    /// Finding 4: cumulative delta is budgeted against the cap.
    function test_Finding4_DeltaNotBudgeted_cumulativeCap() public {
        for (uint256 i = 0; i < DELTA_CAP / DELTA_PER_JOB; i++) {
            order(dt, buyer, 1, DELTA_PER_JOB);
        }
        assertEq(dt.deltaOrdered(), DELTA_CAP);
        assertEq(dt.deltaLeft(), 0);
        Datatoken.Ticket memory t = ticket(1, 1, PRICE);
        bytes memory sig = sign(OPERATOR_PK, dt, t, buyer);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.DeltaCapExceeded.selector, uint64(1), uint64(0)));
        dt.buyAndOrder(t, sig, 0, 0, 0, 0);
    }

    /// Finding 5: a receipt charges exactly the reserved budget; a refund cannot follow it; nothing
    /// the operator reports resets the budget.
    function test_Finding5_OperatorDecidesEverything_boundedSettlement() public {
        (uint256 id, Datatoken.Order memory o) = order(dt, buyer, EPSILON, DELTA);
        receipt(dt, id, o);
        assertEq(dt.epsilonOrdered(), EPSILON);
        assertEq(dt.deltaOrdered(), DELTA);
        uint8 receipted = dt.ORDER_RECEIPTED();
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.OrderNotOpen.selector, id, receipted));
        dt.refund(id, o);
        // A forged order (less epsilon than reserved) does not match the commitment.
        (uint256 id2, Datatoken.Order memory o2) = order(dt, buyer, EPSILON, DELTA);
        o2.epsilon = 0;
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.OrderMismatch.selector, id2));
        dt.refund(id2, o2);
        assertEq(dt.epsilonOrdered(), 2 * EPSILON);
    }

    /// Finding 6 (low): an NFT transfer resets roles and the payment collector; tokens are
    /// allow-listed; payments are pulled; stray tokens can be swept but escrow cannot; feeBps() is there.
    function test_Finding6_Low_transferResetsPullPaymentsSweepAllowList() public {
        address manager = makeAddr("manager");
        address newOwner = makeAddr("newOwner");
        vm.prank(provider);
        nft.addManager(manager);
        vm.prank(provider);
        nft.transferFrom(provider, newOwner, 1);
        assertFalse(nft.isManager(manager));
        assertEq(dt.paymentCollector(), newOwner);
        vm.prank(manager);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.NotAuthorized.selector, manager));
        dt.setPrice(1);

        DataFactory.PublishParams memory p = params(PRICE);
        p.paymentToken = makeAddr("feeOnTransferToken");
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DataFactory.PaymentTokenNotAllowed.selector, p.paymentToken));
        factory.publish(p);

        // A receipt credits; the collector pulls. A stray transfer can be swept, the escrow cannot.
        (uint256 id, Datatoken.Order memory o) = order(dt, buyer, EPSILON, DELTA);
        (, Datatoken.Order memory open) = order(dt, buyer, EPSILON, DELTA);
        receipt(dt, id, o);
        uint256 fee = PRICE * FEE_BPS / 10_000;
        assertEq(dt.credits(newOwner), PRICE - fee);
        assertEq(dt.credits(feeCollector), fee);
        usdc.faucet(address(dt), 7);
        vm.prank(newOwner);
        dt.sweep(address(usdc), newOwner);
        assertEq(usdc.balanceOf(newOwner), 7);
        assertEq(usdc.balanceOf(address(dt)), dt.held());
        assertEq(dt.held(), PRICE + open.amount);
        vm.prank(newOwner);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.NothingToSweep.selector, address(usdc)));
        dt.sweep(address(usdc), newOwner);
        assertEq(dt.feeBps(), FEE_BPS);
    }

    /// Finding 7 (info): the implementation takes no order and no initialisation; no fake
    /// Transfer events; prices are not epochs (nothing to overflow).
    function test_Finding7_Info_implementationClosedNoFakeTransfer() public {
        assertFalse(dtImpl.orderingOpen());
        Datatoken.Ticket memory t = ticket(1, 0, 0);
        vm.expectRevert(Datatoken.OrderingClosed.selector);
        dtImpl.dispenseAndOrder(t, "");
        vm.expectRevert();
        dtImpl.initialize(0, address(this));
        vm.expectRevert();
        nftImpl.initialize(address(this), address(0), "", "", "", 0);

        vm.recordLogs();
        order(dt, buyer, EPSILON, DELTA);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bytes32 transferTopic = keccak256("Transfer(address,address,uint256)");
        for (uint256 i = 0; i < logs.length; i++) {
            assertFalse(logs[i].emitter == address(dt) && logs[i].topics[0] == transferTopic);
        }
        assertEq(dt.totalSupply(), 0);
        // Many price changes: open orders keep what they paid, the price is just the latest value.
        for (uint256 i = 0; i < 5; i++) {
            vm.prank(provider);
            dt.setPrice(i + 1);
        }
        assertEq(dt.price(), 5);
    }
}
