"""Entry script of the PyInstaller bundle: the `dtpm-app` command (`dtpm_app.__main__.main`).

A script of its own because PyInstaller runs its entry file as a top-level script, where the
package-relative imports of `dtpm_app/__main__.py` would not resolve.
"""

import sys

from dtpm_app.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
