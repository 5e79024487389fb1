// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {Datatoken} from "../contracts/Datatoken.sol";
import {ReentrantToken} from "../contracts/test/ReentrantToken.sol";
import {DataFactory} from "../contracts/DataFactory.sol";
import {DataNFT} from "../contracts/DataNFT.sol";
import {Fixture} from "./Fixture.sol";

/// @notice Unit tests of every Datatoken entry point: the happy path and each revert.
contract DatatokenTest is Fixture {
    function _buy(Datatoken.Ticket memory t, bytes memory sig) internal returns (uint256) {
        vm.prank(buyer);
        return dt.buyAndOrder(t, sig, 0, 0, 0, 0);
    }

    // ----- buyAndOrder / dispenseAndOrder -----

    function test_buyAndOrder_escrowsAndEmits() public {
        Datatoken.Ticket memory t = ticket(EPSILON, DELTA, PRICE);
        bytes memory sig = sign(OPERATOR_PK, dt, t, buyer);
        uint64 deadline = uint64(block.timestamp) + WINDOW;
        vm.expectEmit(address(dt));
        emit Datatoken.OrderStarted(t.nonce, buyer, address(nft), EPSILON, DELTA, ALGORITHM, PRICE, deadline);
        uint256 id = _buy(t, sig);
        assertEq(id, t.nonce);
        assertEq(usdc.balanceOf(address(dt)), PRICE);
        assertEq(dt.held(), PRICE);
        assertEq(dt.epsilonOrdered(), EPSILON);
        assertEq(dt.deltaOrdered(), DELTA);
        (uint8 status, bytes32 commitment) = dt.getOrder(id);
        assertEq(status, dt.ORDER_OPEN());
        assertEq(commitment, dt.orderCommitment(Datatoken.Order(buyer, EPSILON, DELTA, PRICE, deadline)));
    }

    function test_buyAndOrder_withPermitAndFailedPermit() public {
        vm.prank(buyer);
        usdc.approve(address(dt), PRICE);
        Datatoken.Ticket memory t = ticket(EPSILON, DELTA, PRICE);
        bytes memory sig = sign(OPERATOR_PK, dt, t, buyer);
        // A bogus permit is ignored when the allowance is there.
        vm.prank(buyer);
        dt.buyAndOrder(t, sig, block.timestamp + 1, 27, bytes32(uint256(1)), bytes32(uint256(2)));
        assertEq(dt.held(), PRICE);
    }

    function test_buyAndOrder_revertsInOrder() public {
        Datatoken.Ticket memory t = ticket(EPSILON, DELTA, PRICE);
        bytes memory sig = sign(OPERATOR_PK, dt, t, buyer);
        vm.prank(operator);
        dt.setOperatorOrderingDisabled(true);
        vm.expectRevert(Datatoken.OrderingClosed.selector);
        _buy(t, sig);
        list(dt);

        bytes memory wrongLength = new bytes(64);
        vm.expectRevert(Datatoken.TicketInvalid.selector);
        _buy(t, wrongLength);

        t.price = PRICE - 1;
        sig = sign(OPERATOR_PK, dt, t, buyer);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.PriceMismatch.selector, PRICE, PRICE - 1));
        _buy(t, sig);

        t = ticket(0, 0, PRICE);
        sig = sign(OPERATOR_PK, dt, t, buyer);
        vm.expectRevert(Datatoken.ZeroEpsilon.selector);
        _buy(t, sig);

        t = ticket(EPSILON_PER_JOB + 1, 0, PRICE);
        sig = sign(OPERATOR_PK, dt, t, buyer);
        vm.expectRevert(
            abi.encodeWithSelector(Datatoken.EpsilonPerJobCapExceeded.selector, EPSILON_PER_JOB + 1, EPSILON_PER_JOB)
        );
        _buy(t, sig);

        t = ticket(1, DELTA_PER_JOB + 1, PRICE);
        sig = sign(OPERATOR_PK, dt, t, buyer);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.DeltaPerJobCapExceeded.selector, DELTA_PER_JOB + 1, DELTA_PER_JOB));
        _buy(t, sig);

        for (uint256 i = 0; i < EPSILON_CAP / EPSILON_PER_JOB; i++) {
            order(dt, buyer, EPSILON_PER_JOB, 0);
        }
        t = ticket(1, 0, PRICE);
        sig = sign(OPERATOR_PK, dt, t, buyer);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.EpsilonCapExceeded.selector, uint64(1), uint64(0)));
        _buy(t, sig);
    }

    function test_buyAndOrder_insufficientAllowance() public {
        address poor = makeAddr("poor");
        Datatoken.Ticket memory t = ticket(EPSILON, DELTA, PRICE);
        bytes memory sig = sign(OPERATOR_PK, dt, t, poor);
        vm.prank(poor);
        vm.expectRevert();
        dt.buyAndOrder(t, sig, 0, 0, 0, 0);
    }

    function test_dispenseAndOrder_freeOnly() public {
        Datatoken.Ticket memory t = ticket(EPSILON, DELTA, 0);
        bytes memory sig = sign(OPERATOR_PK, dt, t, buyer);
        vm.prank(buyer);
        vm.expectRevert(Datatoken.NotFree.selector);
        dt.dispenseAndOrder(t, sig);
        (, Datatoken free) = publish(provider, 0);
        list(free);
        sig = sign(OPERATOR_PK, free, t, buyer);
        vm.prank(buyer);
        uint256 id = free.dispenseAndOrder(t, sig);
        assertEq(free.orderStatus(id), free.ORDER_OPEN());
        assertEq(free.held(), 0);
    }

    function test_ticketDigest_isEip712OverThisClone() public view {
        Datatoken.Ticket memory t =
            Datatoken.Ticket({epsilon: 1, delta: 2, algorithmHash: ALGORITHM, price: 3, nonce: 4, expiry: 5});
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("PPDX Datatoken"),
                keccak256("2"),
                block.chainid,
                address(dt)
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "OrderTicket(address buyer,uint64 epsilon,uint64 delta,bytes32 algorithmHash,uint256 price,uint256 nonce,uint64 expiry)"
                ),
                buyer,
                uint64(1),
                uint64(2),
                ALGORITHM,
                uint256(3),
                uint256(4),
                uint64(5)
            )
        );
        assertEq(dt.ticketDigest(t, buyer), keccak256(abi.encodePacked("\x19\x01", domain, structHash)));
        (, string memory name_, string memory version, uint256 chainId, address verifying,,) = dt.eip712Domain();
        assertEq(name_, "PPDX Datatoken");
        assertEq(version, "2");
        assertEq(chainId, block.chainid);
        assertEq(verifying, address(dt));
    }

    function test_ticket_boundToDatatoken() public {
        (, Datatoken other) = publish(provider, PRICE);
        list(other);
        Datatoken.Ticket memory t = ticket(EPSILON, DELTA, PRICE);
        bytes memory sigForOther = sign(OPERATOR_PK, other, t, buyer);
        vm.expectRevert(Datatoken.TicketInvalid.selector);
        _buy(t, sigForOther);
    }

    function test_ticket_rotatedOperatorOnly() public {
        address newOperator = vm.addr(0xC0FFEE);
        vm.prank(deployer);
        factory.proposeOperator(newOperator);
        vm.warp(block.timestamp + DELAY);
        factory.applyOperator();
        Datatoken.Ticket memory t = ticket(EPSILON, DELTA, PRICE);
        t.expiry = uint64(block.timestamp + 1);
        bytes memory oldSig = sign(OPERATOR_PK, dt, t, buyer);
        vm.expectRevert(Datatoken.TicketInvalid.selector);
        _buy(t, oldSig);
        _buy(t, sign(0xC0FFEE, dt, t, buyer));
    }

    // ----- settlement -----

    function test_recordReceipt_creditsAndEmits() public {
        (uint256 id, Datatoken.Order memory o) = order(dt, buyer, EPSILON, DELTA);
        uint256 fee = PRICE * FEE_BPS / 10_000;
        vm.expectEmit(address(dt));
        emit Datatoken.ReceiptRecorded(
            id, keccak256("dataset"), ALGORITHM, keccak256("params"), keccak256("result"), EPSILON, DELTA, PRICE - fee, fee
        );
        receipt(dt, id, o);
        assertEq(dt.orderStatus(id), dt.ORDER_RECEIPTED());
        assertEq(dt.credits(provider), PRICE - fee);
        assertEq(dt.credits(feeCollector), fee);
        assertEq(dt.held(), PRICE);
        assertEq(dt.epsilonOrdered(), EPSILON);
    }

    function test_recordReceipt_reverts() public {
        (uint256 id, Datatoken.Order memory o) = order(dt, buyer, EPSILON, DELTA);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.NotOperator.selector, buyer));
        dt.recordReceipt(id, o, 0, 0, 0, 0);
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.OrderNotOpen.selector, id + 1, uint8(0)));
        dt.recordReceipt(id + 1, o, 0, 0, 0, 0);
        Datatoken.Order memory forged = Datatoken.Order(o.consumer, o.epsilon, o.delta, 0, o.deadline);
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.OrderMismatch.selector, id));
        dt.recordReceipt(id, forged, 0, 0, 0, 0);
        vm.warp(o.deadline); // the deadline itself is still in time
        receipt(dt, id, o);
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.OrderNotOpen.selector, id, uint8(2)));
        dt.recordReceipt(id, o, 0, 0, 0, 0);
    }

    function test_refund_releasesAndCredits() public {
        (uint256 id, Datatoken.Order memory o) = order(dt, buyer, EPSILON, DELTA);
        vm.expectEmit(address(dt));
        emit Datatoken.OrderRefunded(id, buyer, PRICE, EPSILON, DELTA);
        vm.prank(operator);
        dt.refund(id, o);
        assertEq(dt.orderStatus(id), dt.ORDER_REFUNDED());
        assertEq(dt.epsilonOrdered(), 0);
        assertEq(dt.deltaOrdered(), 0);
        assertEq(dt.credits(buyer), PRICE);
    }

    function test_refund_reverts() public {
        (uint256 id, Datatoken.Order memory o) = order(dt, buyer, EPSILON, DELTA);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.NotOperator.selector, buyer));
        dt.refund(id, o);
        vm.warp(o.deadline + 1);
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.OrderExpired.selector, id, o.deadline));
        dt.refund(id, o);
    }

    function test_reclaim_afterDeadlineOnly() public {
        (uint256 id, Datatoken.Order memory o) = order(dt, buyer, EPSILON, DELTA);
        vm.warp(o.deadline);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.OrderNotExpired.selector, id, o.deadline));
        dt.reclaim(id, o);
        vm.warp(o.deadline + 1);
        vm.expectEmit(address(dt));
        emit Datatoken.OrderReclaimed(id, buyer, PRICE, EPSILON, DELTA);
        dt.reclaim(id, o);
        assertEq(dt.orderStatus(id), dt.ORDER_RECLAIMED());
        assertEq(dt.credits(buyer), PRICE);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.OrderNotOpen.selector, id, uint8(4)));
        dt.reclaim(id, o);
        // The ticket's nonce stays used after settlement.
        Datatoken.Ticket memory t = ticket(EPSILON, DELTA, PRICE);
        t.nonce = id;
        t.expiry = uint64(block.timestamp + 1);
        bytes memory sig = sign(OPERATOR_PK, dt, t, buyer);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.TicketUsed.selector, id));
        _buy(t, sig);
    }

    // ----- withdraw / sweep -----

    function test_withdraw_paysAndReverts() public {
        (uint256 id, Datatoken.Order memory o) = order(dt, buyer, EPSILON, DELTA);
        receipt(dt, id, o);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.NothingToWithdraw.selector, buyer));
        dt.withdraw(buyer);
        uint256 amount = dt.credits(provider);
        vm.expectEmit(address(dt));
        emit Datatoken.Withdrawn(provider, amount);
        dt.withdraw(provider);
        assertEq(usdc.balanceOf(provider), amount);
        assertEq(dt.credits(provider), 0);
        assertEq(dt.held(), PRICE - amount);
    }

    function test_sweep_reverts() public {
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.NotAuthorized.selector, buyer));
        dt.sweep(address(usdc), buyer);
        vm.prank(provider);
        vm.expectRevert(Datatoken.ZeroAddress.selector);
        dt.sweep(address(usdc), address(0));
        order(dt, buyer, EPSILON, DELTA);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.NothingToSweep.selector, address(usdc)));
        dt.sweep(address(usdc), provider);
    }

    function test_sweep_otherToken() public {
        ReentrantToken other = new ReentrantToken();
        other.mint(address(dt), 5);
        vm.prank(provider);
        dt.sweep(address(other), provider);
        assertEq(other.balanceOf(provider), 5);
    }

    function test_reentrancy_refused() public {
        ReentrantToken evil = new ReentrantToken();
        vm.prank(deployer);
        factory.setPaymentToken(address(evil), true);
        DataFactory.PublishParams memory p = params(PRICE);
        p.paymentToken = address(evil);
        vm.prank(provider);
        (, address d) = factory.publish(p);
        Datatoken token = Datatoken(d);
        list(token);
        evil.mint(buyer, PRICE);
        vm.prank(buyer);
        evil.approve(d, PRICE);
        evil.arm(d, evil.ATTACK_BUY_AND_ORDER(), address(0));
        (uint256 id, Datatoken.Order memory o) = order(token, buyer, EPSILON, DELTA);
        assertTrue(evil.attackAttempted());
        assertFalse(evil.attackSucceeded());
        assertEq(
            bytes4(evil.attackRevertData()), ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector
        );
        receipt(token, id, o);
        evil.arm(d, evil.ATTACK_WITHDRAW(), provider);
        token.withdraw(provider);
        assertFalse(evil.attackSucceeded());
        assertEq(token.credits(provider), 0);
    }

    // ----- settings -----

    function test_setPrice_ownerOrManager() public {
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.NotAuthorized.selector, buyer));
        dt.setPrice(1);
        address manager = makeAddr("manager");
        vm.prank(provider);
        nft.addManager(manager);
        vm.expectEmit(address(dt));
        emit Datatoken.PriceChanged(PRICE, 7);
        vm.prank(manager);
        dt.setPrice(7);
        assertEq(dt.price(), 7);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.PriceTooHigh.selector, uint256(type(uint96).max) + 1));
        dt.setPrice(uint256(type(uint96).max) + 1);
    }

    function test_setPrice_openOrdersKeepTheirAmount() public {
        (uint256 id, Datatoken.Order memory o) = order(dt, buyer, EPSILON, DELTA);
        vm.prank(provider);
        dt.setPrice(1);
        vm.prank(operator);
        dt.refund(id, o);
        assertEq(dt.credits(buyer), PRICE);
    }

    function test_setPaymentCollector() public {
        address collector = makeAddr("collector");
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.NotAuthorized.selector, buyer));
        dt.setPaymentCollector(collector);
        vm.prank(provider);
        vm.expectRevert(Datatoken.ZeroAddress.selector);
        dt.setPaymentCollector(address(0));
        vm.expectEmit(address(dt));
        emit Datatoken.PaymentCollectorChanged(provider, collector);
        vm.prank(provider);
        dt.setPaymentCollector(collector);
        assertEq(dt.paymentCollector(), collector);
    }

    function test_resetPaymentCollector_onlyNft() public {
        vm.expectRevert(abi.encodeWithSelector(Datatoken.NotAuthorized.selector, address(this)));
        dt.resetPaymentCollector(address(this));
    }

    function test_setOperatorOrderingDisabled() public {
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.NotOperator.selector, buyer));
        dt.setOperatorOrderingDisabled(true);
        vm.expectEmit(address(dt));
        emit Datatoken.OperatorOrderingDisabled(true);
        vm.prank(operator);
        dt.setOperatorOrderingDisabled(true);
        assertTrue(dt.operatorOrderingDisabled());
        assertFalse(dt.orderingOpen());
    }

    function test_syncNftState() public {
        vm.expectRevert(abi.encodeWithSelector(Datatoken.NotAuthorized.selector, address(this)));
        dt.syncNftState(1);
        vm.prank(provider);
        nft.setState(2); // OrderingDisabled
        assertFalse(dt.orderingOpen());
        vm.prank(provider);
        nft.setState(3); // Unlisted: hidden, still orderable
        assertTrue(dt.orderingOpen());
    }

    function test_initialize_onlyFactoryOnce() public {
        vm.expectRevert(abi.encodeWithSelector(Datatoken.NotAuthorized.selector, address(this)));
        dt.initialize(0, address(this));
        vm.prank(address(factory));
        vm.expectRevert(Datatoken.AlreadyInitialized.selector);
        dt.initialize(0, address(this));
    }

    function test_views() public view {
        assertEq(dt.dataNft(), address(nft));
        assertEq(dt.factory(), address(factory));
        assertEq(dt.paymentToken(), address(usdc));
        assertEq(dt.feeCollector(), feeCollector);
        assertEq(dt.feeBps(), FEE_BPS);
        assertEq(dt.orderWindow(), WINDOW);
        assertEq(dt.epsilonCap(), EPSILON_CAP);
        assertEq(dt.epsilonPerJobCap(), EPSILON_PER_JOB);
        assertEq(dt.deltaCap(), DELTA_CAP);
        assertEq(dt.deltaPerJobCap(), DELTA_PER_JOB);
        assertEq(dt.epsilonLeft(), EPSILON_CAP);
        assertEq(dt.deltaLeft(), DELTA_CAP);
        assertEq(dt.name(), "Hospital readmissions 2019-2023");
        assertEq(dt.symbol(), "PPDX-42");
        assertEq(dt.decimals(), 18);
        assertEq(DataNFT(dt.dataNft()).datatoken(), address(dt));
    }

    // ----- fuzz -----

    /// The fee split always sums to the amount and the fee is the rounded-down bps share.
    function testFuzz_feeSplit(uint96 price_, uint16 bps) public {
        bps = uint16(bound(bps, 0, factory.MAX_FEE_BPS()));
        vm.prank(deployer);
        factory.proposeFee(bps, feeCollector);
        vm.warp(block.timestamp + DELAY);
        factory.applyFee();
        (, Datatoken token) = publish(provider, price_);
        list(token);
        usdc.faucet(buyer, 10_000e6);
        vm.prank(buyer);
        usdc.approve(address(token), type(uint256).max);
        if (price_ > usdc.balanceOf(buyer)) deal(address(usdc), buyer, price_);
        (uint256 id, Datatoken.Order memory o) = order(token, buyer, EPSILON, DELTA);
        receipt(token, id, o);
        uint256 fee = token.credits(feeCollector);
        assertEq(fee + token.credits(provider), price_);
        assertEq(fee, uint256(price_) * bps / 10_000);
        assertEq(token.held(), price_);
    }

    /// Any price up to uint96 can be set and is what the next order pays; above it reverts.
    function testFuzz_price(uint256 newPrice) public {
        vm.prank(provider);
        if (newPrice > type(uint96).max) {
            vm.expectRevert(abi.encodeWithSelector(Datatoken.PriceTooHigh.selector, newPrice));
            dt.setPrice(newPrice);
            return;
        }
        dt.setPrice(newPrice);
        assertEq(dt.price(), newPrice);
        deal(address(usdc), buyer, newPrice);
        (uint256 id, Datatoken.Order memory o) = order(dt, buyer, EPSILON, DELTA);
        assertEq(o.amount, newPrice);
        assertEq(dt.held(), newPrice);
        vm.prank(operator);
        dt.refund(id, o);
        assertEq(dt.credits(buyer), newPrice);
    }

    /// A ticket signed by anyone but the operator never orders.
    function testFuzz_ticketSigner(uint256 pk) public {
        pk = bound(pk, 1, 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140);
        vm.assume(pk != OPERATOR_PK);
        Datatoken.Ticket memory t = ticket(EPSILON, DELTA, PRICE);
        bytes memory sig = sign(pk, dt, t, buyer);
        vm.expectRevert(Datatoken.TicketInvalid.selector);
        _buy(t, sig);
    }
}
