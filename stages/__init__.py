"""The pipeline stage scripts (one per DVC stage); importable as kslottery.stages.NAME."""
