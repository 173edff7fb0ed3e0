"""How good a result is: image-quality metrics (`metrics`: PSNR, SSIM, LPIPS, FID...), what the
texture DTPM adds is (`texture_metrics`) and the held-out scores an adapter file carries
(`model_scores`)."""
