"""The chain: contracts, artifacts, web3 client, typed wrappers, indexer, embedded node.

Seams left by the marketplace core: ``Dataset.price / price_token`` become the on-chain fixed
price, moderation transitions (``services.moderation.dataset_transition``) will flip the
operator's ordering flag, and ``Dataset.file_sha256`` is the dataset hash for receipts."""
