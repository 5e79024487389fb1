// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Test} from "forge-std/Test.sol";

import {DataFactory} from "../contracts/DataFactory.sol";
import {DataNFT} from "../contracts/DataNFT.sol";
import {Datatoken} from "../contracts/Datatoken.sol";
import {MockStablecoin} from "../contracts/MockStablecoin.sol";

/// @notice The deployment every test starts from: a factory (7-day order window, 2-day parameter
/// delay, 2.5 % fee), the dev stablecoin allow-listed, and one priced dataset, listed (ordering open).
abstract contract Fixture is Test {
    uint256 internal constant OPERATOR_PK = 0xA11CE;
    uint256 internal constant BUYER_PK = 0xB0B;
    uint32 internal constant WINDOW = 7 days;
    uint32 internal constant DELAY = 2 days;
    uint16 internal constant FEE_BPS = 250;
    uint256 internal constant PRICE = 12_500_000;
    uint64 internal constant EPSILON = 500_000;
    uint64 internal constant DELTA = 10_000_000_000_000;
    uint64 internal constant EPSILON_CAP = 3_000_000;
    uint64 internal constant EPSILON_PER_JOB = 1_000_000;
    uint64 internal constant DELTA_CAP = 100_000_000_000_000;
    uint64 internal constant DELTA_PER_JOB = 20_000_000_000_000;
    bytes32 internal constant ALGORITHM = keccak256("dp-logreg");

    address internal deployer = makeAddr("deployer");
    address internal operator;
    address internal feeCollector = makeAddr("feeCollector");
    address internal provider = makeAddr("provider");
    address internal buyer;

    MockStablecoin internal usdc;
    DataNFT internal nftImpl;
    Datatoken internal dtImpl;
    DataFactory internal factory;
    DataNFT internal nft;
    Datatoken internal dt;
    uint256 internal nextNonce = 1;

    function setUp() public virtual {
        operator = vm.addr(OPERATOR_PK);
        buyer = vm.addr(BUYER_PK);
        vm.warp(1_700_000_000);
        vm.startPrank(deployer);
        usdc = new MockStablecoin();
        nftImpl = new DataNFT();
        dtImpl = new Datatoken();
        factory = new DataFactory(address(nftImpl), address(dtImpl), operator, feeCollector, FEE_BPS, WINDOW, DELAY);
        factory.setPaymentToken(address(usdc), true);
        vm.stopPrank();
        (nft, dt) = publish(provider, PRICE);
        list(dt);
        usdc.faucet(buyer, 10_000e6);
        vm.prank(buyer);
        usdc.approve(address(dt), type(uint256).max);
    }

    function params(uint256 price_) internal view returns (DataFactory.PublishParams memory) {
        return DataFactory.PublishParams({
            name: "Hospital readmissions 2019-2023",
            symbol: "PPDX-42",
            metadataURI: "http://127.0.0.1:8000/api/v1/datasets/3f2b8c9e-1d4a-4b6f-9a7e-2c5d8e1f0a3b/",
            metadataHash: keccak256("metadata"),
            paymentToken: address(usdc),
            price: price_,
            epsilonCap: EPSILON_CAP,
            epsilonPerJobCap: EPSILON_PER_JOB,
            deltaCap: DELTA_CAP,
            deltaPerJobCap: DELTA_PER_JOB
        });
    }

    function publish(address owner, uint256 price_) internal returns (DataNFT, Datatoken) {
        vm.prank(owner);
        (address n, address d) = factory.publish(params(price_));
        return (DataNFT(n), Datatoken(d));
    }

    function list(Datatoken token) internal {
        vm.prank(operator);
        token.setOperatorOrderingDisabled(false);
    }

    function ticket(uint64 epsilon, uint64 delta, uint256 price_) internal returns (Datatoken.Ticket memory t) {
        t = Datatoken.Ticket({
            epsilon: epsilon,
            delta: delta,
            algorithmHash: ALGORITHM,
            price: price_,
            nonce: nextNonce++,
            expiry: uint64(block.timestamp + 1 hours)
        });
    }

    function sign(uint256 pk, Datatoken token, Datatoken.Ticket memory t, address forBuyer)
        internal
        view
        returns (bytes memory)
    {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, token.ticketDigest(t, forBuyer));
        return abi.encodePacked(r, s, v);
    }

    /// @dev Order on `token` as `who` with a valid ticket; returns the id and the order to settle with.
    function order(Datatoken token, address who, uint64 epsilon, uint64 delta)
        internal
        returns (uint256 id, Datatoken.Order memory o)
    {
        uint256 amount = token.price();
        Datatoken.Ticket memory t = ticket(epsilon, delta, amount);
        bytes memory sig = sign(OPERATOR_PK, token, t, who);
        vm.prank(who);
        id = token.buyAndOrder(t, sig, 0, 0, 0, 0);
        o = Datatoken.Order({
            consumer: who,
            epsilon: epsilon,
            delta: delta,
            amount: amount,
            deadline: uint64(block.timestamp) + WINDOW
        });
    }

    function receipt(Datatoken token, uint256 id, Datatoken.Order memory o) internal {
        vm.prank(operator);
        token.recordReceipt(id, o, keccak256("dataset"), ALGORITHM, keccak256("params"), keccak256("result"));
    }
}
