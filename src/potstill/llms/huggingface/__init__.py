"""LLMs from the Hugging Face ecosystem: `InferenceEndpointsLLM` (`inference_endpoints`)
and `TransformersLLM` (`transformers`). Import them from `potstill.llms`; this package
imports no SDK."""
