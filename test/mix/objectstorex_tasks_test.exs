defmodule Mix.Tasks.ObjectstorexTasksTest do
  # The mix objectstorex.* tasks run in-process (Mix.Task.rerun/2) against real local,
  # filesystem and memory stores. Exit codes, terminals and network stores are in
  # objectstorex_tasks_subprocess_test.exs, where the tasks run as real `mix` processes.
  #
  # Not async: capturing standard error swaps the VM-wide :standard_error device.
  use ExUnit.Case, async: false

  import ObjectStoreX.TestHelpers

  alias ObjectStoreX.{CLI, TestBackends}

  @mib 1_048_576

  setup do
    dir = TestBackends.tmp_dir!("cli")
    on_exit(fn -> File.rm_rf(dir) end)
    %{dir: dir}
  end

  defp ok!(task, args) do
    {result, stdout, stderr} = run_mix_task(task, args)
    assert result == :ok, "#{task} #{Enum.join(args, " ")} failed: #{inspect(result)}\n#{stderr}"
    {stdout, stderr}
  end

  defp error!(task, args) do
    {result, stdout, _stderr} = run_mix_task(task, args)
    assert {:error, message} = result, "#{task} #{Enum.join(args, " ")} succeeded:\n#{stdout}"
    message
  end

  defp write_random!(path, size) do
    data = random_bytes(size)
    File.mkdir_p!(Path.dirname(path))
    File.write!(path, data)
    data
  end

  defp sha256(data), do: :crypto.hash(:sha256, data) |> Base.encode16(case: :lower)

  defp memory_key(label), do: "#{TestBackends.unique_prefix(label)}"

  describe "cp" do
    test "local file -> file:// store -> local file, with the sha256 digest verified", %{
      dir: dir
    } do
      src = Path.join(dir, "source.bin")
      # Two parts of 5 MiB and a short last one: a real multipart upload.
      data = write_random!(src, 10 * @mib + 123)
      url = "file://#{dir}/store/data/source.bin"

      {out, _} =
        ok!("objectstorex.cp", [
          "--no-progress",
          "--checksum",
          "sha256",
          "--part-size",
          "5MiB",
          src,
          url
        ])

      assert out =~ "copied #{src} -> #{url}: #{byte_size(data)} bytes"
      assert out =~ "sha256 #{sha256(data)}"
      assert File.read!(Path.join([dir, "store/data/source.bin"])) == data

      back = Path.join(dir, "back.bin")
      {out, _} = ok!("objectstorex.cp", ["--no-progress", "--checksum", "sha256", url, back])
      assert out =~ "sha256 #{sha256(data)}"
      assert File.read!(back) == data

      # Without --checksum the download is one download_file/4 call, and no digest is printed.
      plain = Path.join(dir, "plain.bin")
      {out, _} = ok!("objectstorex.cp", ["--no-progress", "--concurrency", "3", url, plain])
      refute out =~ "sha256"
      assert File.read!(plain) == data
    end

    test "every checksum algorithm prints the digest of the bytes copied", %{dir: dir} do
      src = Path.join(dir, "c.bin")
      data = write_random!(src, 100_000)

      expected = %{
        "md5" => :crypto.hash(:md5, data) |> Base.encode16(case: :lower),
        "sha1" => :crypto.hash(:sha, data) |> Base.encode16(case: :lower),
        "sha256" => sha256(data)
      }

      for {name, digest} <- expected do
        {out, _} =
          ok!("objectstorex.cp", ["--no-progress", "--checksum", name, src, "memory://#{name}"])

        assert out =~ "#{name} #{digest}"
      end

      {out, _} =
        ok!("objectstorex.cp", ["--no-progress", "--checksum", "crc32c", src, "memory://c"])

      assert [_, hex] = Regex.run(~r/crc32c ([0-9a-f]+)$/m, out)
      assert String.length(hex) == 8
    end

    test "with --progress the streaming paths copy the same bytes and draw a bar", %{dir: dir} do
      src = Path.join(dir, "p.bin")
      data = write_random!(src, 6 * @mib + 7)
      key = memory_key("progress")

      # file -> store, store -> store, store -> file: each composed from Stream.upload/download
      {out, err} =
        ok!("objectstorex.cp", ["--progress", "--checksum", "sha256", src, "memory://#{key}/a"])

      assert out =~ "sha256 #{sha256(data)}"
      assert err =~ ~r/\r\s*100% \[#+\]/
      refute out =~ "\r"

      {out, err} =
        ok!("objectstorex.cp", [
          "--progress",
          "--checksum",
          "sha256",
          "memory://#{key}/a",
          "file://#{dir}/store/b"
        ])

      assert out =~ "sha256 #{sha256(data)}"
      assert err =~ "6.0 MiB / 6.0 MiB"
      assert File.read!(Path.join(dir, "store/b")) == data

      back = Path.join(dir, "back/p.bin")
      {out, _} = ok!("objectstorex.cp", ["--progress", "file://#{dir}/store/b", back])
      assert out =~ "#{byte_size(data)} bytes"
      assert File.read!(back) == data
      # Nothing partial is left beside the target.
      assert File.ls!(Path.dirname(back)) == ["p.bin"]
    end

    test "memory:// is one store for the whole run", %{dir: dir} do
      src = Path.join(dir, "m.bin")
      data = write_random!(src, 300_000)
      key = memory_key("mem")

      ok!("objectstorex.cp", ["--no-progress", src, "memory://#{key}/one.bin"])
      # store -> store: transfer/5 between two keys of the same in-memory store
      ok!("objectstorex.cp", ["--no-progress", "memory://#{key}/one.bin", "memory://#{key}/two/"])
      ok!("objectstorex.cp", ["--no-progress", "memory://#{key}/two/one.bin", "#{dir}/out/"])
      assert File.read!(Path.join(dir, "out/one.bin")) == data
    end

    test "a destination ending in / or naming a directory receives the source's name", %{
      dir: dir
    } do
      src = Path.join(dir, "name.txt")
      write_random!(src, 10)
      File.mkdir_p!(Path.join(dir, "existing"))

      ok!("objectstorex.cp", ["--no-progress", src, Path.join(dir, "existing")])
      assert File.exists?(Path.join(dir, "existing/name.txt"))

      ok!("objectstorex.cp", ["--no-progress", src, "file://#{dir}/store/"])
      assert File.exists?(Path.join(dir, "store/name.txt"))
    end

    test "--recursive copies a tree there and back, and ls/rm see it", %{dir: dir} do
      tree = %{
        "a.txt" => random_bytes(10),
        "sub/b.bin" => random_bytes(70_000),
        "sub/deep/c.bin" => random_bytes(1),
        "empty.txt" => ""
      }

      for {rel, data} <- tree, do: write_random_at(Path.join([dir, "tree", rel]), data)
      key = memory_key("tree")

      {out, _} =
        ok!("objectstorex.cp", [
          "--no-progress",
          "-r",
          "--jobs",
          "2",
          Path.join(dir, "tree"),
          "memory://#{key}/"
        ])

      assert out =~ "copied 4 objects, #{70_011} bytes"

      {out, _} = ok!("objectstorex.ls", ["-r", "memory://#{key}"])

      assert out |> String.split("\n", trim: true) |> Enum.sort() ==
               Enum.sort(for rel <- Map.keys(tree), do: "#{key}/#{rel}")

      {out, _} = ok!("objectstorex.ls", ["memory://#{key}/"])

      assert out |> String.split("\n", trim: true) |> Enum.sort() == [
               "PRE sub/",
               "a.txt",
               "empty.txt"
             ]

      {out, _} = ok!("objectstorex.ls", ["--long", "memory://#{key}/sub"])
      lines = String.split(out, "\n", trim: true)
      assert Enum.any?(lines, &(&1 =~ ~r/^\s+PRE  deep\/$/))
      assert Enum.any?(lines, &(&1 =~ ~r/^\s+70000  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  b\.bin$/))

      # The object itself, by its URL
      {out, _} = ok!("objectstorex.ls", ["memory://#{key}/sub/b.bin"])
      assert out == "b.bin\n"

      {progress_out, err} =
        ok!("objectstorex.cp", ["--progress", "--recursive", "memory://#{key}/sub", "#{dir}/back"])

      assert progress_out =~ "copied 2 objects, 70001 bytes"
      assert err =~ "100% ["
      assert File.read!(Path.join(dir, "back/b.bin")) == tree["sub/b.bin"]
      assert File.read!(Path.join(dir, "back/deep/c.bin")) == tree["sub/deep/c.bin"]

      {out, _} = ok!("objectstorex.rm", ["--recursive", "memory://#{key}/sub"])
      assert out =~ "removed 2 objects"
      {out, _} = ok!("objectstorex.ls", ["-r", "memory://#{key}"])

      assert out |> String.split("\n", trim: true) |> Enum.sort() == [
               "#{key}/a.txt",
               "#{key}/empty.txt"
             ]

      assert error!("objectstorex.ls", ["memory://#{key}/sub/"]) =~
               "nothing under memory://#{key}/sub/"

      {out, _} = ok!("objectstorex.rm", ["memory://#{key}/a.txt"])
      assert out =~ "removed memory://#{key}/a.txt"
      assert error!("objectstorex.rm", ["memory://#{key}/a.txt"]) =~ "not found"
    end

    test "--recursive copies what it can, reports each failure and fails the run", %{dir: dir} do
      key = memory_key("partial")
      store = memory_store()
      :ok = ObjectStoreX.put(store, "#{key}/ok1.txt", "one")
      :ok = ObjectStoreX.put(store, "#{key}/blocked/x.txt", "x")
      :ok = ObjectStoreX.put(store, "#{key}/ok2.txt", "two")
      # A file where the copy needs a directory: only blocked/x.txt cannot be written.
      File.mkdir_p!(Path.join(dir, "dst"))
      File.write!(Path.join(dir, "dst/blocked"), "in the way")

      {result, out, err} =
        run_mix_task("objectstorex.cp", ["--no-progress", "-r", "memory://#{key}/", "#{dir}/dst/"])

      assert {:error, message} = result
      assert message =~ "1 of 3 objects failed to copy"
      assert err =~ ~r/failed memory:\/\/#{key}\/blocked\/x.txt -> .*blocked\/x.txt/
      assert out =~ "copied 2 objects, 6 bytes"
      assert File.read!(Path.join(dir, "dst/ok1.txt")) == "one"
      assert File.read!(Path.join(dir, "dst/ok2.txt")) == "two"
    end

    test "local directory -> local directory", %{dir: dir} do
      write_random_at(Path.join(dir, "src/x/y.txt"), "why")

      ok!("objectstorex.cp", ["--no-progress", "-r", Path.join(dir, "src"), Path.join(dir, "dst")])

      assert File.read!(Path.join(dir, "dst/x/y.txt")) == "why"
    end
  end

  describe "cat and sign" do
    test "cat writes every byte value unchanged", %{dir: dir} do
      data = :binary.list_to_bin(Enum.to_list(0..255)) <> random_bytes(3 * @mib)
      path = Path.join(dir, "bin/all.bin")
      write_random_at(path, data)

      {out, _} = ok!("objectstorex.cat", ["--chunk-size", "64KiB", "file://#{path}"])
      assert out == data
      # The device is back to unicode for whatever prints next.
      assert Keyword.get(:io.getopts(), :encoding) in [:unicode, :latin1]
    end

    test "sign on a store without presigned URLs says so" do
      assert error!("objectstorex.sign", ["memory://some/key"]) =~ "presigned URLs are supported"
    end
  end

  describe "errors" do
    test "bad options are named", %{dir: dir} do
      src = Path.join(dir, "x")
      File.write!(src, "x")

      assert error!("objectstorex.cp", ["--bogus", src, "memory://x"]) =~ "unknown option --bogus"

      assert error!("objectstorex.cp", ["--concurrency", "many", src, "memory://x"]) =~
               ~s(invalid value "many" for --concurrency)

      assert error!("objectstorex.cp", ["--concurrency", "0", src, "memory://x"]) =~
               "--concurrency must be a positive integer"

      assert error!("objectstorex.cp", ["--part-size", "1MiB", src, "memory://x"]) =~
               "--part-size must be at least 5MiB"

      assert error!("objectstorex.cp", ["--part-size", "lots", src, "memory://x"]) =~
               "--part-size must be a size"

      assert error!("objectstorex.cp", ["--checksum", "sha512", src, "memory://x"]) =~
               "--checksum must be one of"

      assert error!("objectstorex.sign", ["--method", "patch", "memory://x"]) =~ "--method"
      assert error!("objectstorex.sign", ["--expires", "-5", "memory://x"]) =~ "--expires"
      assert error!("objectstorex.ls", ["-x", "memory://"]) =~ "unknown option -x"
      assert error!("objectstorex.cp", [src]) =~ "expected SRC and DST"
    end

    test "unknown schemes, missing buckets and missing sources", %{dir: dir} do
      assert error!("objectstorex.cp", ["ftp://host/file", dir]) =~
               ~s(unsupported URL scheme "ftp://")

      assert error!("objectstorex.ls", ["s3:///key"]) =~ "names no bucket"
      assert error!("objectstorex.ls", ["az://"]) =~ "names no container"
      assert error!("objectstorex.cp", ["file://relative/x", dir]) =~ "must be absolute"

      missing = Path.join(dir, "missing.bin")
      assert error!("objectstorex.cp", [missing, "memory://x"]) =~ "#{missing}: no such file"

      message = error!("objectstorex.cp", ["file://#{missing}", Path.join(dir, "out")])
      assert message =~ "not found"
      refute File.exists?(Path.join(dir, "out"))

      assert error!("objectstorex.cat", ["memory://#{memory_key("none")}/x"]) =~ "not found"
      assert error!("objectstorex.cp", [dir, "memory://x"]) =~ "is a directory"
      assert error!("objectstorex.cp", ["memory://prefix/", dir]) =~ "--recursive"

      assert error!("objectstorex.cp", ["-r", "memory://#{memory_key("e")}/", dir]) =~
               "no objects"
    end
  end

  describe "credentials" do
    # check_credentials/2 reads the environment through System.get_env/1, so the variables can
    # be set here; nothing below builds a store or sends a request.
    setup do
      saved =
        for {k, v} <- System.get_env(),
            String.match?(
              k,
              ~r/^(AWS|AZURE|GOOGLE)_|^SERVICE_ACCOUNT$|^HOME$|^OBJECTSTOREX_ALLOW/
            ),
            do: {k, v}

      for {k, _} <- saved, k != "HOME", do: System.delete_env(k)
      System.put_env("HOME", System.tmp_dir!())

      on_exit(fn ->
        for {k, _} <- System.get_env(),
            String.match?(k, ~r/^(AWS|AZURE|GOOGLE)_/),
            do: System.delete_env(k)

        System.put_env(saved)
      end)
    end

    defp check(url) do
      {:ok, loc} = CLI.Location.parse(url)
      provider = %{"s3" => :s3, "gs" => :gcs, "az" => :azure, "abfs" => :azure}[loc.scheme]
      CLI.Credentials.check(provider, loc)
    end

    test "none set: each provider names what to set" do
      assert {:error, message} = check("s3://bucket/key")
      assert message =~ "AWS_ACCESS_KEY_ID"
      assert {:error, message} = check("gs://bucket/key")
      assert message =~ "GOOGLE_SERVICE_ACCOUNT"
      assert {:error, message} = check("az://container/key")
      assert message =~ "AZURE_STORAGE_ACCOUNT_NAME"
      assert {:error, message} = check("abfs://c@acct.dfs.core.windows.net/key")
      assert message =~ "AZURE_STORAGE_ACCOUNT_KEY"
    end

    test "each kind of credential is recognised" do
      System.put_env("AWS_ACCESS_KEY_ID", "id")
      System.put_env("AWS_SECRET_ACCESS_KEY", "secret")
      assert check("s3://bucket/key") == :ok

      System.put_env("GOOGLE_APPLICATION_CREDENTIALS", "/nowhere.json")
      assert check("gs://bucket/key") == :ok

      System.put_env("AZURE_STORAGE_ACCOUNT_NAME", "acct")
      assert {:error, _} = check("az://container/key")
      System.put_env("AZURE_STORAGE_SAS_TOKEN", "sv=1")
      assert check("az://container/key") == :ok
    end

    test "the emulator, public buckets and the metadata opt-in need no secret" do
      System.put_env("AZURE_STORAGE_USE_EMULATOR", "true")
      assert check("az://container/key") == :ok
      System.put_env("AWS_SKIP_SIGNATURE", "true")
      assert check("s3://bucket/key") == :ok
      System.put_env("OBJECTSTOREX_ALLOW_INSTANCE_METADATA", "true")
      assert check("gs://bucket/key") == :ok
      System.delete_env("OBJECTSTOREX_ALLOW_INSTANCE_METADATA")
    end

    test "stores read the environment as this VM sees it, System.put_env/2 included" do
      System.put_env("AWS_ENDPOINT_URL", "localhost:9000")

      assert {:error, %ObjectStoreX.Error{reason: :invalid_argument, message: message}} =
               ObjectStoreX.new(:s3, bucket: "b", region: "us-east-1")

      assert message =~ ":endpoint"
      # Not read at all without from_env.
      assert {:ok, _} = ObjectStoreX.new(:s3, bucket: "b", region: "us-east-1", from_env: false)

      System.put_env(%{
        "AWS_ENDPOINT_URL" => "http://127.0.0.1:1",
        "AWS_ALLOW_HTTP" => "true",
        "AWS_ACCESS_KEY_ID" => "AKIDFAKE",
        "AWS_SECRET_ACCESS_KEY" => "FAKE-SECRET-from-put-env"
      })

      store = ObjectStoreX.new!(:s3, bucket: "b", region: "us-east-1", retry: [max_retries: 0])
      # The request went to the endpoint the environment named, signed with its credentials.
      assert {:error, %ObjectStoreX.Error{reason: :network_error, message: message}} =
               ObjectStoreX.get(store, "k")

      assert message =~ "127.0.0.1:1"
      refute message =~ "FAKE-SECRET"
      refute inspect(store) =~ "FAKE-SECRET"
    end

    test "an endpoint or bucket from the environment is checked as the options are" do
      # The native library reads the OS environment, which System.put_env/2 does not change:
      # each case runs in a VM of its own started with the variable set.
      new_in = fn env, opts ->
        paths = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])
        env = [{~c"AWS_ACCESS_KEY_ID", ~c"a"}, {~c"AWS_SECRET_ACCESS_KEY", ~c"s"} | env]
        {:ok, peer, _node} = :peer.start(%{connection: :standard_io, env: env, args: paths})

        try do
          :peer.call(peer, ObjectStoreX, :new, [:s3, [region: "us-east-1"] ++ opts], 30_000)
        after
          :peer.stop(peer)
        end
      end

      assert {:error, %ObjectStoreX.Error{reason: :invalid_argument, message: message}} =
               new_in.([{~c"AWS_ENDPOINT_URL", ~c"localhost:9000"}], bucket: "b")

      assert message =~ ":endpoint (or its environment variable)"

      assert {:error, %ObjectStoreX.Error{reason: :invalid_argument, message: message}} =
               new_in.([{~c"AWS_BUCKET_NAME", ~c"a#b"}], [])

      assert message =~ ":bucket (or its environment variable)"

      assert {:ok, %ObjectStoreX.Store{}} =
               new_in.([{~c"AWS_ENDPOINT_URL", ~c"http://127.0.0.1:1"}], bucket: "b")
    end

    test "secret values and URL passwords are redacted" do
      System.put_env("AWS_SECRET_ACCESS_KEY", "FAKE-SECRET-redact-me-123")
      System.put_env("AWS_ACCESS_KEY_ID", "AKIDVISIBLE123")

      assert CLI.Credentials.redact("x FAKE-SECRET-redact-me-123 y AKIDVISIBLE123") ==
               "x [REDACTED] y AKIDVISIBLE123"

      assert CLI.Credentials.redact("GET http://user:pw@127.0.0.1/x") ==
               "GET http://[REDACTED]@127.0.0.1/x"
    end
  end

  describe "sizes" do
    test "bytes and units" do
      assert CLI.parse_size("16777216") == {:ok, 16_777_216}
      assert CLI.parse_size("8MiB") == {:ok, 8 * @mib}
      assert CLI.parse_size("64M") == {:ok, 64 * @mib}
      assert CLI.parse_size("64m") == {:ok, 64 * @mib}
      assert CLI.parse_size("5MB") == {:ok, 5_000_000}
      assert CLI.parse_size("1.5GiB") == {:ok, 1536 * @mib}
      assert CLI.parse_size("2KB") == {:ok, 2000}
      assert CLI.parse_size("12 XB") == :error
      assert CLI.parse_size("-1") == :error
      assert CLI.parse_size("0.3B") == :error
    end
  end

  defp write_random_at(path, data) do
    File.mkdir_p!(Path.dirname(path))
    File.write!(path, data)
  end

  defp memory_store do
    {:ok, loc} = CLI.Location.parse("memory://")
    {:ok, store} = CLI.Credentials.open(loc)
    store
  end
end
