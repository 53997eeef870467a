"""Learning: rollouts of auctions, batched PPO and the training loop."""
