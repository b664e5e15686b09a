namespace AppKernel.Gofer.Tests;
