"""Running an engine on photos (DESIGN 1.5 and 6): specs and loading behind one interface
(`engine`), DTPM's `Restorer` (`dtpm_restorer`) and the `SinglePassRestorer`
(`singlepass_restorer`), progress, cancel, the out-of-memory back-off and image checks
(`inference`), blended tiles (`tiling`) and the memory a photo needs (`memory_budget`)."""
