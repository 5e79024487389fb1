// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title Mock USD Coin for development chains only.
/// @notice ERC-20 with EIP-2612 permit and 6 decimals (like USDC); anyone can draw from the faucet.
contract MockStablecoin is ERC20, ERC20Permit {
    /// @notice The most one faucet call hands out: 10,000 USDC.
    uint256 public constant FAUCET_LIMIT = 10_000 * 10 ** 6;

    error FaucetLimitExceeded(uint256 requested, uint256 limit);

    constructor() ERC20("Mock USD Coin", "USDC") ERC20Permit("Mock USD Coin") {}

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Mint `amount` (at most FAUCET_LIMIT) to `to`. Emits ERC-20 `Transfer` from zero.
    function faucet(address to, uint256 amount) external {
        if (amount > FAUCET_LIMIT) revert FaucetLimitExceeded(amount, FAUCET_LIMIT);
        _mint(to, amount);
    }
}
