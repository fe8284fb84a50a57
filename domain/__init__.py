"""The domain of 街乡吹哨、部门报到: cases, the duty list, deadlines. Pure Python + eventsourcing."""
