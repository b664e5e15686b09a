// coderunner: judges submissions in AppKernel sandboxes.
//   echo '{"language":"python","source":"print(6*7)"}' | coderunner          -> one verdict
//   coderunner submissions.json                                              -> an array in, an array out
using System.Text.Json;
using AppKernel;
using AppKernel.Samples.CodeRunner;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

var services = new ServiceCollection().AddLogging(b => b.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace).SetMinimumLevel(LogLevel.Warning));
services.AddAppKernel().UsePtracePlatform();
await using var provider = services.BuildServiceProvider();
var judge = new Judge(provider.GetRequiredService<ISandboxFactory>(), logger: provider.GetRequiredService<ILogger<Judge>>());

string json = args.Length > 0 ? await File.ReadAllTextAsync(args[0]) : await Console.In.ReadToEndAsync();
var options = new JsonSerializerOptions { WriteIndented = true };
using var document = JsonDocument.Parse(json);
if (document.RootElement.ValueKind == JsonValueKind.Array)
{
    var submissions = document.RootElement.Deserialize<Submission[]>()!;
    Console.WriteLine(JsonSerializer.Serialize(await judge.RunManyAsync(submissions), options));
}
else
{
    var submission = document.RootElement.Deserialize<Submission>()!;
    Console.WriteLine(JsonSerializer.Serialize(await judge.RunAsync(submission), options));
}
