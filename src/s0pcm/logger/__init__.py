"""The logger: the module runner and daemon (the hub every consumer subscribes to), its journal,
the lock that keeps one logger per store, the clock it trusts, the overrides a user set, the
live values it keeps per meter (``snapshot``) and the status it reports."""
