"""Pure projection logic of the stats service: facts per tumour, figures, reminders. No I/O."""
