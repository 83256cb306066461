"""The consumer side of an endpoint: the API client, `submit`, the studio launcher, payload files, deploy
and the estimate.

It talks to RunPod's cloud or the local endpoint over HTTP and never runs a job itself: it imports the core
and only the few pure rules of the worker that tests/test_layering.py lists."""
