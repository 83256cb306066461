"""The shared core: the job contract, settings, the artifact store, logs, prices and the SQLite helper.

Every program (worker, endpoint, client, catalog, dashboard) imports it and it imports none of them
(tests/test_layering.py), so that what it holds means the same thing everywhere."""
