"""The prompts every system in the benchmark answers, in the same order."""

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works.",
    "List some facts about the moon.",
    "Describe a walk through a forest in autumn.",
    "What makes a good cup of tea?",
    "Tell me about the history of the printing press.",
    "Describe the life of a honeybee.",
    "How do volcanoes form?",
]
