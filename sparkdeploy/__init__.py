"""sparkdeploy: the logic behind the DGX Spark deploys that is not itself a deploy.

Recipes, host data validation and the rendering of compose files and proxy configuration live
here, so ``deploy.py``, the ``sparkdeploy`` command and the tests all share one implementation.
"""
