"""Multi-domain learning with budget-aware pruning (dos Santos et al.; BA², Berriel et al.): the switched
multi-domain ResNet, the methods (a registry), the sharing terms, costs, and the trainees of the one loop (source
pretraining, joint training). Its configs are in `core.config`, its runs in `runs.multidomain`."""
