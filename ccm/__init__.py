"""CCM: omnichannel customer communication."""
