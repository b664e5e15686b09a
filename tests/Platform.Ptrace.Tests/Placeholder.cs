namespace AppKernel.Platform.Ptrace.Tests;
