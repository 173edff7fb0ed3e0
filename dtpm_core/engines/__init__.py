"""Running an engine on photos (DESIGN 1.5 and 6): specs and loading behind one interface
(`engine`), DTPM's `Restorer` (`dtpm_restorer`) and the `SinglePassRestorer`
(`singlepass_restorer`) on one shared runner (`runner`: device, precision, backend, graph
conversions, the out-of-memory back-off, notes and timing), progress, cancel and the checks of
images in and out (`inference`), blended tiles (`tiling`) and the memory a photo needs
(`memory_budget`)."""
