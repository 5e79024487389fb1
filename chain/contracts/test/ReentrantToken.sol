// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

import {Datatoken} from "../Datatoken.sol";

/// @title A malicious payment token, for tests only.
/// @notice Once armed, its next transfer (a datatoken pulling a payment, or paying out a withdrawal)
/// calls back into the datatoken. The callback's failure is recorded, not bubbled, so a test
/// can check that the outer call went through while the re-entry was refused.
contract ReentrantToken is ERC20 {
    uint8 public constant ATTACK_NONE = 0;
    uint8 public constant ATTACK_BUY_AND_ORDER = 1;
    uint8 public constant ATTACK_DISPENSE_AND_ORDER = 2;
    uint8 public constant ATTACK_WITHDRAW = 3;

    address public target;
    uint8 public attack;
    address public attackAccount;
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

    /// @notice Arm the attack against `target_` for the next transfer; `account` for a withdrawal.
    function arm(address target_, uint8 attack_, address account) external {
        target = target_;
        attack = attack_;
        attackAccount = account;
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
        // An all-zero ticket: the re-entry must be refused before the ticket is even looked at.
        Datatoken.Ticket memory ticket = Datatoken.Ticket(0, 0, bytes32(0), 0, 0, 0);
        if (armed == ATTACK_BUY_AND_ORDER) {
            callData = abi.encodeCall(Datatoken.buyAndOrder, (ticket, "", 0, 0, 0, 0));
        } else if (armed == ATTACK_DISPENSE_AND_ORDER) {
            callData = abi.encodeCall(Datatoken.dispenseAndOrder, (ticket, ""));
        } else {
            callData = abi.encodeCall(Datatoken.withdraw, (attackAccount));
        }
        (bool ok, bytes memory returned) = target.call(callData);
        attackAttempted = true;
        attackSucceeded = ok;
        attackRevertData = returned;
        emit AttackAttempted(armed, ok, returned);
    }
}
