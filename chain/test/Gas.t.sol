// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Vm} from "forge-std/Vm.sol";

import {Datatoken} from "../contracts/Datatoken.sol";
import {DataFactory} from "../contracts/DataFactory.sol";
import {Fixture} from "./Fixture.sol";

/// @notice The issue's gas figures as transactions would pay them (21,000 + calldata + execution),
/// measured with `vm.lastCallGas` around one external call each, every account cooled first (`vm.cool`)
/// so that nothing is warm that a real transaction would find cold. Targets: publish <= 550,000; first
/// buy+order with a ticket and a permit by a fresh buyer <= 140,000; receipt at steady state <= 75,000;
/// order + receipt <= 215,000.
contract GasTest is Fixture {
    uint256 internal constant FRESH_PK = 0xF2E5;

    /// @dev What the last call would cost as a transaction with `data`: 21,000 + calldata + execution,
    /// less the refund (capped at a fifth, EIP-3529), as a receipt's `gasUsed` reports it.
    function _txGas(bytes memory data) internal view returns (uint256 gas) {
        Vm.Gas memory used = vm.lastCallGas();
        gas = 21_000 + used.gasTotalUsed;
        for (uint256 i = 0; i < data.length; i++) {
            gas += data[i] == 0 ? 4 : 16;
        }
        uint256 refund = used.gasRefunded > 0 ? uint256(uint64(used.gasRefunded)) : 0;
        gas -= refund < gas / 5 ? refund : gas / 5;
    }

    function _permit(uint256 pk, address spender, uint256 value, uint256 deadline)
        internal
        view
        returns (uint8 v, bytes32 r, bytes32 s)
    {
        address owner = vm.addr(pk);
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                owner,
                spender,
                value,
                usdc.nonces(owner),
                deadline
            )
        );
        return vm.sign(pk, keccak256(abi.encodePacked("\x19\x01", usdc.DOMAIN_SEPARATOR(), structHash)));
    }

    function _coolAll(address token, address account) internal {
        vm.cool(address(factory));
        vm.cool(address(usdc));
        vm.cool(address(dtImpl));
        vm.cool(address(nftImpl));
        vm.cool(operator);
        vm.cool(account);
        if (token != address(0)) {
            vm.cool(token);
            vm.cool(Datatoken(token).dataNft());
        }
    }

    function test_gas_figures() public {
        DataFactory.PublishParams memory p = params(PRICE);
        _coolAll(address(0), provider);
        vm.prank(provider);
        (address n, address d) = factory.publish(p);
        uint256 publishGas = _txGas(abi.encodeCall(factory.publish, (p)));
        assertTrue(n != address(0));
        Datatoken token = Datatoken(d);
        list(token);

        // First buy+order on a fresh dataset, by a fresh buyer, with a permit and a ticket.
        address fresh = vm.addr(FRESH_PK);
        usdc.faucet(fresh, 1_000e6);
        Datatoken.Ticket memory t = ticket(EPSILON, DELTA, PRICE);
        bytes memory sig = sign(OPERATOR_PK, token, t, fresh);
        uint256 permitDeadline = 4_102_444_800;
        (uint8 v, bytes32 r, bytes32 s) = _permit(FRESH_PK, d, PRICE, permitDeadline);
        _coolAll(d, fresh);
        vm.prank(fresh);
        uint256 id = token.buyAndOrder(t, sig, permitDeadline, v, r, s);
        uint256 buyGas = _txGas(abi.encodeCall(token.buyAndOrder, (t, sig, permitDeadline, v, r, s)));
        Datatoken.Order memory o = Datatoken.Order(fresh, EPSILON, DELTA, PRICE, uint64(block.timestamp) + WINDOW);

        // The first receipt creates the collectors' credit slots; steady state is the second one.
        receipt(token, id, o);
        vm.prank(fresh);
        usdc.approve(d, type(uint256).max);
        (uint256 id2, Datatoken.Order memory o2) = order(token, fresh, EPSILON, DELTA);
        _coolAll(d, operator);
        vm.prank(operator);
        token.recordReceipt(id2, o2, keccak256("dataset"), ALGORITHM, keccak256("params"), keccak256("result"));
        uint256 receiptGas = _txGas(
                abi.encodeCall(
                    token.recordReceipt, (id2, o2, keccak256("dataset"), ALGORITHM, keccak256("params"), keccak256("result"))
                )
            );

        emit log_named_uint("publish", publishGas);
        emit log_named_uint("first buy+order (ticket + permit)", buyGas);
        emit log_named_uint("receipt (steady state)", receiptGas);
        emit log_named_uint("order + receipt", buyGas + receiptGas);
        assertLe(publishGas, 550_000);
        assertLe(buyGas, 140_000);
        assertLe(receiptGas, 75_000);
        assertLe(buyGas + receiptGas, 215_000);
    }
}
