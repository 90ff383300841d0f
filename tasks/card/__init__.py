from tasks.card.statistics import DatasetStatistics, compute_statistics
__all__ = ["DatasetStatistics", "compute_statistics"]
