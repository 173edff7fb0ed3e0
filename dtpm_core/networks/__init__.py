"""The networks of DTPM (DESIGN 1.3-1.4) as torch modules, without weights files or sampling:
NAFNet blocks (`layers`) and the U-Net skeleton (`unet`) that every network is built on, the
denoiser with its guidance adapters (`denoiser`, `adapters`), the initial predictor
(`predictor`), the frozen semantic encoder (`semantic`, `efficientnet_lite`, pretrained weights
through `hub`; its input resized without torch: `semantic_input`), the assembled model
(`model`) and the CPU-fast inference layers (`inference_layers`)."""
