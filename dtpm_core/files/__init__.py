"""Images in and results out: reading and writing images (`imageio`), atomic writes (`atomic`),
the marker inside every result naming its input (`output_marker`) and the plan of a batch's
output names, checked before anything runs (`output_plan`). Torch-free."""
