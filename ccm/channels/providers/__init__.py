"""HTTP providers for SMS, chat and email; each sends through :mod:`ccm.channels.http`."""
