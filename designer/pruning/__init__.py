"""Layer-adaptive pruning by rate-distortion (Xu et al., ICCV 2023): curves, allocation, masks."""
