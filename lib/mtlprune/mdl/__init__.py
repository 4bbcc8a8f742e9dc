"""Multi-domain learning with budget-aware pruning (dos Santos et al.; BA², Berriel et al.): configs, the switched
multi-domain ResNet, methods, training, costs and runs. Importing `mdl.methods` registers every method."""
