// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

import {DataFactory} from "../contracts/DataFactory.sol";
import {DataNFT} from "../contracts/DataNFT.sol";
import {Datatoken} from "../contracts/Datatoken.sol";
import {Fixture} from "./Fixture.sol";

/// @notice Unit tests of the factory: publish, delayed parameters, allow-list, ownership, sweep.
contract DataFactoryTest is Fixture {
    function test_constructor_bounds() public {
        vm.expectRevert(DataFactory.ZeroAddress.selector);
        new DataFactory(address(0), address(dtImpl), operator, feeCollector, FEE_BPS, WINDOW, DELAY);
        vm.expectRevert(abi.encodeWithSelector(DataFactory.InvalidOrderWindow.selector, uint32(59 minutes)));
        new DataFactory(address(nftImpl), address(dtImpl), operator, feeCollector, FEE_BPS, 59 minutes, DELAY);
        vm.expectRevert(abi.encodeWithSelector(DataFactory.InvalidParameterDelay.selector, uint32(1 hours)));
        new DataFactory(address(nftImpl), address(dtImpl), operator, feeCollector, FEE_BPS, WINDOW, 1 hours);
        vm.expectRevert(abi.encodeWithSelector(DataFactory.FeeTooHigh.selector, uint16(1_001)));
        new DataFactory(address(nftImpl), address(dtImpl), operator, feeCollector, 1_001, WINDOW, DELAY);
        vm.expectRevert(DataFactory.ZeroAddress.selector);
        new DataFactory(address(nftImpl), address(dtImpl), address(0), feeCollector, FEE_BPS, WINDOW, DELAY);
    }

    function test_publish_emitsAndInitialises() public {
        DataFactory.PublishParams memory p = params(PRICE);
        vm.recordLogs();
        vm.prank(provider);
        (address n, address d) = factory.publish(p);
        assertTrue(factory.isDatatoken(d));
        assertEq(DataNFT(n).ownerOf(1), provider);
        assertEq(DataNFT(n).metadataURI(), p.metadataURI);
        assertEq(Datatoken(d).price(), PRICE);
        assertEq(Datatoken(d).paymentCollector(), provider);
        assertFalse(Datatoken(d).orderingOpen());
        assertEq(vm.getRecordedLogs().length > 0, true);
    }

    function test_publish_reverts() public {
        DataFactory.PublishParams memory p = params(PRICE);
        p.epsilonPerJobCap = 0;
        vm.expectRevert(DataFactory.InvalidCaps.selector);
        factory.publish(p);
        p = params(PRICE);
        p.epsilonPerJobCap = p.epsilonCap + 1;
        vm.expectRevert(DataFactory.InvalidCaps.selector);
        factory.publish(p);
        p = params(PRICE);
        p.deltaPerJobCap = p.deltaCap + 1;
        vm.expectRevert(DataFactory.InvalidCaps.selector);
        factory.publish(p);
        p = params(uint256(type(uint96).max) + 1);
        vm.expectRevert(abi.encodeWithSelector(Datatoken.PriceTooHigh.selector, uint256(type(uint96).max) + 1));
        factory.publish(p);
    }

    function test_operator_delayed() public {
        address next = makeAddr("next");
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, buyer));
        factory.proposeOperator(next);
        vm.expectRevert(DataFactory.NothingPending.selector);
        factory.applyOperator();
        vm.prank(deployer);
        vm.expectRevert(DataFactory.ZeroAddress.selector);
        factory.proposeOperator(address(0));
        uint64 eta = uint64(block.timestamp) + DELAY;
        vm.expectEmit(address(factory));
        emit DataFactory.OperatorProposed(next, eta);
        vm.prank(deployer);
        factory.proposeOperator(next);
        (address pending, uint64 when) = factory.pendingOperator();
        assertEq(pending, next);
        assertEq(when, eta);
        vm.warp(eta - 1);
        vm.expectRevert(abi.encodeWithSelector(DataFactory.TooEarly.selector, eta));
        factory.applyOperator();
        vm.warp(eta);
        vm.expectEmit(address(factory));
        emit DataFactory.OperatorChanged(operator, next);
        factory.applyOperator();
        assertEq(factory.operator(), next);
        (pending, when) = factory.pendingOperator();
        assertEq(pending, address(0));
    }

    function test_fee_delayedAndOnlyForNewDatasets() public {
        vm.prank(deployer);
        vm.expectRevert(abi.encodeWithSelector(DataFactory.FeeTooHigh.selector, uint16(1_001)));
        factory.proposeFee(1_001, feeCollector);
        vm.prank(deployer);
        vm.expectRevert(DataFactory.ZeroAddress.selector);
        factory.proposeFee(100, address(0));
        vm.expectRevert(DataFactory.NothingPending.selector);
        factory.applyFee();
        address collector2 = makeAddr("collector2");
        vm.prank(deployer);
        factory.proposeFee(100, collector2);
        (uint16 bps, address c, uint64 eta) = factory.pendingFee();
        assertEq(bps, 100);
        assertEq(c, collector2);
        vm.expectRevert(abi.encodeWithSelector(DataFactory.TooEarly.selector, eta));
        factory.applyFee();
        vm.warp(eta);
        factory.applyFee();
        assertEq(factory.feeBps(), 100);
        assertEq(factory.feeCollector(), collector2);
        assertEq(dt.feeBps(), FEE_BPS); // published before: keeps its fee
        (, Datatoken later) = publish(provider, PRICE);
        assertEq(later.feeBps(), 100);
        assertEq(later.feeCollector(), collector2);
    }

    function test_paymentToken_allowList() public {
        address token = makeAddr("token");
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, buyer));
        factory.setPaymentToken(token, true);
        vm.prank(deployer);
        vm.expectRevert(DataFactory.ZeroAddress.selector);
        factory.setPaymentToken(address(0), true);
        vm.expectEmit(address(factory));
        emit DataFactory.PaymentTokenAllowed(address(usdc), false);
        vm.prank(deployer);
        factory.setPaymentToken(address(usdc), false);
        assertFalse(factory.isPaymentToken(address(usdc)));
        vm.expectRevert(abi.encodeWithSelector(DataFactory.PaymentTokenNotAllowed.selector, address(usdc)));
        publish(provider, PRICE);
        // A published dataset keeps its token.
        order(dt, buyer, EPSILON, DELTA);
    }

    function test_ownership_twoStepNoRenounce() public {
        address multisig = makeAddr("multisig");
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, buyer));
        factory.renounceOwnership();
        vm.prank(deployer);
        factory.transferOwnership(multisig);
        assertEq(factory.pendingOwner(), multisig);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, buyer));
        factory.acceptOwnership();
        vm.prank(multisig);
        factory.acceptOwnership();
        assertEq(factory.owner(), multisig);
        vm.prank(multisig);
        vm.expectRevert(DataFactory.RenounceDisabled.selector);
        factory.renounceOwnership();
    }

    function test_sweep() public {
        usdc.faucet(address(factory), 3);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, buyer));
        factory.sweep(address(usdc), buyer);
        vm.prank(deployer);
        vm.expectRevert(DataFactory.ZeroAddress.selector);
        factory.sweep(address(usdc), address(0));
        vm.prank(deployer);
        factory.sweep(address(usdc), deployer);
        assertEq(usdc.balanceOf(deployer), 3);
    }

    function test_views() public view {
        assertEq(factory.orderWindow(), WINDOW);
        assertEq(factory.parameterDelay(), DELAY);
        assertEq(factory.nftImplementation(), address(nftImpl));
        assertEq(factory.datatokenImplementation(), address(dtImpl));
        assertEq(factory.MAX_FEE_BPS(), 1_000);
        assertEq(factory.owner(), deployer);
    }
}
