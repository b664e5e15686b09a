namespace AppKernel.Sdk.Tests;
