"""The chain: contracts, artifacts, web3 client, typed wrappers, wallets, orders, indexer, dev faucet."""
