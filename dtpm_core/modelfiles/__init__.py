"""Model files (DESIGN 4): the safetensors format of base and adapter files with their
metadata, hashes and strict loading (`weights`), where installed models live and how a name
finds one (`catalog`), and the one switch that lets files without a checksum load
(`unverified`). Importing this package loads nothing heavy: `catalog` is torch-free."""
