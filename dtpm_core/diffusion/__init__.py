"""The diffusion maths of DTPM (DESIGN 1.1-1.2), pure functions beside the networks: the noise
schedule (`schedule`), DDIM sampling (`ddim`), each model's sampling calibration
(`calibration`), the Stage I / II training objectives (`objectives`) and the RTV texture
removal that splits a photo into structure and texture (`smoothing`)."""
