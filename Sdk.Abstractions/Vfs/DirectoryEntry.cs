namespace AppKernel.Vfs;

/// <summary>
/// One name in a directory listing. <see cref="NextOffset"/> is the cookie that resumes the
/// listing after this entry: it must stay valid while the directory changes, as getdents requires.
/// </summary>
/// <param name="Name">The entry's name.</param>
/// <param name="Ino">Its inode number.</param>
/// <param name="Type">Its file type bits.</param>
/// <param name="NextOffset">Where the listing resumes after it (always 2 or more: 0 and 1 belong to "." and "..").</param>
public readonly record struct DirectoryEntry(string Name, ulong Ino, FileMode Type, long NextOffset);
