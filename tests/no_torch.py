"""What the tests that run without torch share: `PRELUDE`, Python source that a fresh process
runs first so that importing torch or torchvision fails there, as in the CPU bundle, and that
defines `torch_free()` (True while neither has been imported)."""

PRELUDE = '''
import sys
from importlib.abc import MetaPathFinder

class NoTorch(MetaPathFinder):
    # torch and torchvision are not installed here (the CPU bundle)
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoTorch())

def torch_free():
    return not [m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision")]
'''
