"""What the tools/ benchmarks use: evaluator ranking, reference accuracies, search quality."""
