"""One file per method, named as the method (random-k.py defines random-k), each defining `METHOD`.

The registry (config/registry.py) loads them; a stage of method M depends on M's file alone, so a
new method or an edit to another one reruns none of M's stages. Each file imports only config/
(and numpy): a method is its facts and, for a token method, its row rule.
"""
