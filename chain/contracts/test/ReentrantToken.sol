// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

import {Datatoken} from "../Datatoken.sol";

/// @title A malicious payment token, for tests only.
/// @notice Once armed, its next transfer (a datatoken pulling a payment, or paying out a receipt or a
/// refund) calls back into the datatoken. The callback's failure is recorded, not bubbled, so a test
/// can check that the outer call went through while the re-entry was refused.
contract ReentrantToken is ERC20 {
    uint8 public constant ATTACK_NONE = 0;
    uint8 public constant ATTACK_BUY_AND_ORDER = 1;
    uint8 public constant ATTACK_DISPENSE_AND_ORDER = 2;
    uint8 public constant ATTACK_REFUND = 3;
    uint8 public constant ATTACK_RECORD_RECEIPT = 4;

    address public target;
    uint8 public attack;
    uint256 public attackOrderId;
    bool public attackAttempted;
    bool public attackSucceeded;
    bytes public attackRevertData;

    event AttackAttempted(uint8 attack, bool succeeded, bytes revertData);

    constructor() ERC20("Reentrant Token", "EVIL") {}

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Arm the attack against `target_` for the next transfer; `orderId` for refund/receipt.
    function arm(address target_, uint8 attack_, uint256 orderId) external {
        target = target_;
        attack = attack_;
        attackOrderId = orderId;
        attackAttempted = false;
        attackSucceeded = false;
        delete attackRevertData;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        uint8 armed = attack;
        if (armed == ATTACK_NONE || from == address(0)) return;
        attack = ATTACK_NONE;
        bytes memory callData;
        if (armed == ATTACK_BUY_AND_ORDER) {
            callData = abi.encodeCall(Datatoken.buyAndOrder, (1, 0, bytes32(0), type(uint256).max, 0, 0, 0, 0));
        } else if (armed == ATTACK_DISPENSE_AND_ORDER) {
            callData = abi.encodeCall(Datatoken.dispenseAndOrder, (1, 0, bytes32(0)));
        } else if (armed == ATTACK_REFUND) {
            callData = abi.encodeCall(Datatoken.refund, (attackOrderId));
        } else {
            callData = abi.encodeCall(
                Datatoken.recordReceipt, (attackOrderId, bytes32(0), bytes32(0), bytes32(0), bytes32(0), 0)
            );
        }
        (bool ok, bytes memory returned) = target.call(callData);
        attackAttempted = true;
        attackSucceeded = ok;
        attackRevertData = returned;
        emit AttackAttempted(armed, ok, returned);
    }
}
