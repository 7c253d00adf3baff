"""People who log in to the web app: users (one role each, from :mod:`ccm.access`) and their sessions."""
