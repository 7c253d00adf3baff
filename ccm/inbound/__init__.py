"""The inbound layer: the HTTP and SMTP edge where providers' status reports and people's replies
arrive. It sits above the domains and calls their services in turn (messages, consent,
conversations, engagement), so that no domain has to call up into another."""
