"""Layer 10, sharing: what leaves this machine, run by hand (`ksl export`): a trained method as a
hub-ready folder with its model card. Never imported by a stage, never a study."""
